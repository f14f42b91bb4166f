"""The delivery side's SQL: a chain's head, an attempt's outcome, what is due, which stores have webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DeliveryStatus, Webhook, WebhookDelivery


@dataclass(frozen=True)
class Outcome:
    status: str  # pending (retry later) | succeeded | failed
    response_status: int | None
    latency_ms: int | None
    error: str | None
    next_attempt_at: datetime | None = None


class DeliveryWorkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store_ids(self) -> list[uuid.UUID]:
        """Stores with a webhook: their events are fanned out and their deliveries made."""
        statement = select(Webhook.store_id).distinct().order_by(Webhook.store_id)
        return list((await self.session.scalars(statement)).all())

    async def chain_head(
        self, webhook_id: uuid.UUID, order_key: str
    ) -> tuple[WebhookDelivery, Webhook] | None:
        """The chain's oldest pending delivery and its webhook."""
        statement = (
            select(WebhookDelivery, Webhook)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.webhook_id == webhook_id,
                WebhookDelivery.order_key == order_key,
                WebhookDelivery.status == DeliveryStatus.pending,
            )
            .order_by(WebhookDelivery.seq)
            .limit(1)
        )
        row = (await self.session.execute(statement)).first()
        return (row[0], row[1]) if row is not None else None

    async def delivery_chain(self, delivery_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
        row = (
            await self.session.execute(
                select(WebhookDelivery.webhook_id, WebhookDelivery.order_key).where(
                    WebhookDelivery.id == delivery_id
                )
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def record(self, delivery: WebhookDelivery, outcome: Outcome, *, now: datetime) -> bool:
        """The attempt's outcome, if the delivery is still as it was read (pending, same attempts): a redelivery
        or a second owner meanwhile wins."""
        values: dict[str, object] = {
            "status": outcome.status,
            "attempts": WebhookDelivery.attempts + 1,
            "response_status": outcome.response_status,
            "latency_ms": outcome.latency_ms,
            "last_error": outcome.error,
            "updated_at": func.now(),
        }
        if outcome.status == DeliveryStatus.pending:
            values["next_attempt_at"] = outcome.next_attempt_at
        else:
            values["delivered_at"] = now
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.attempts == delivery.attempts,
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def webhook_succeeded(self, webhook_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Webhook)
            .where(Webhook.id == webhook_id, Webhook.failing_since.is_not(None))
            .values(failing_since=None)
        )

    async def webhook_failed(self, webhook_id: uuid.UUID, now: datetime) -> datetime | None:
        """Note a failure; return since when the webhook has been failing without a success."""
        await self.session.execute(
            update(Webhook)
            .where(Webhook.id == webhook_id, Webhook.failing_since.is_(None))
            .values(failing_since=now)
        )
        return await self.session.scalar(select(Webhook.failing_since).where(Webhook.id == webhook_id))

    async def disable(self, webhook_id: uuid.UUID, reason: str, now: datetime) -> bool:
        """Turn the webhook off and give its pending deliveries up (a replay sends them again)."""
        result = await self.session.execute(
            update(Webhook)
            .where(Webhook.id == webhook_id, Webhook.enabled.is_(True))
            .values(enabled=False, disabled_at=now, disabled_reason=reason)
        )
        await self.give_up_pending(webhook_id, "webhook disabled: " + reason, now)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def give_up_pending(self, webhook_id: uuid.UUID, error: str, now: datetime) -> None:
        await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == DeliveryStatus.pending)
            .values(status=DeliveryStatus.failed, last_error=error, delivered_at=now, updated_at=func.now())
        )

    async def due_chains(
        self, store_ids: Sequence[uuid.UUID], *, now: datetime, fresh_before: datetime, limit: int = 5000
    ) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]]:
        """(store, delivery, webhook, chain) of the oldest due delivery per chain: retries whose time came, and
        first attempts older than `fresh_before` (their trigger was lost; younger ones are still on their way)."""
        statement = (
            select(
                WebhookDelivery.store_id,
                WebhookDelivery.id,
                WebhookDelivery.webhook_id,
                WebhookDelivery.order_key,
            )
            .ext(distinct_on(WebhookDelivery.webhook_id, WebhookDelivery.order_key))
            .where(
                WebhookDelivery.store_id.in_(store_ids),
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.attempts > 0, and_(WebhookDelivery.next_attempt_at <= fresh_before)),
            )
            .order_by(WebhookDelivery.webhook_id, WebhookDelivery.order_key, WebhookDelivery.seq)
            .limit(limit)
        )
        return [(r[0], r[1], r[2], r[3]) for r in await self.session.execute(statement)]
