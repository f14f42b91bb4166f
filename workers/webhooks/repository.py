"""The delivery side's SQL: a chain's head, an attempt's outcome, what is due, which stores have webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import (
    DateTime,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    column,
    func,
    or_,
    select,
    true,
    update,
    values,
)
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

    async def chain_heads(
        self, chains: Sequence[tuple[uuid.UUID, str]], *, per_chain: int = 1
    ) -> dict[tuple[uuid.UUID, str], list[tuple[WebhookDelivery, Webhook]]]:
        """Each chain's oldest pending deliveries (up to `per_chain`, oldest first) and their webhook; chains with
        nothing pending are left out. One index range per chain (a LATERAL ... LIMIT on the chain index), however
        long a chain's backlog."""
        wanted = values(column("webhook_id", Uuid()), column("order_key", String()), name="wanted").data(
            sorted(set(chains))
        )
        first = (
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.webhook_id == wanted.c.webhook_id,
                WebhookDelivery.order_key == wanted.c.order_key,
                WebhookDelivery.status == DeliveryStatus.pending,
            )
            .order_by(WebhookDelivery.seq)
            .limit(per_chain)
            .correlate(wanted)
            .lateral("first")
        )
        statement = (
            select(WebhookDelivery, Webhook)
            .select_from(wanted)
            .join(first, true())
            .join(WebhookDelivery, WebhookDelivery.id == first.c.id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .order_by(WebhookDelivery.webhook_id, WebhookDelivery.order_key, WebhookDelivery.seq)
        )
        heads: dict[tuple[uuid.UUID, str], list[tuple[WebhookDelivery, Webhook]]] = {}
        for delivery, webhook in await self.session.execute(statement):
            heads.setdefault((delivery.webhook_id, delivery.order_key), []).append((delivery, webhook))
        return heads

    async def record(self, outcomes: Sequence[tuple[WebhookDelivery, Outcome]], *, now: datetime) -> None:
        """The attempts' outcomes, each only if its delivery is still as it was read (pending, same attempts):
        a redelivery or a second owner meanwhile wins. One statement for all (executemany)."""
        table = cast(Table, WebhookDelivery.__table__)
        statement = (
            update(table)
            .where(
                table.c.id == bindparam("b_id"),
                table.c.status == DeliveryStatus.pending,
                table.c.attempts == bindparam("b_attempts"),
            )
            .values(
                status=bindparam("b_status"),
                attempts=table.c.attempts + 1,
                response_status=bindparam("b_response_status"),
                latency_ms=bindparam("b_latency_ms"),
                last_error=bindparam("b_error"),
                next_attempt_at=func.coalesce(
                    bindparam("b_next", type_=DateTime(timezone=True)), table.c.next_attempt_at
                ),
                delivered_at=bindparam("b_delivered_at", type_=DateTime(timezone=True)),
                updated_at=func.now(),
            )
        )
        await self.session.execute(
            statement,
            [
                {
                    "b_id": delivery.id,
                    "b_attempts": delivery.attempts,
                    "b_status": outcome.status,
                    "b_response_status": outcome.response_status,
                    "b_latency_ms": outcome.latency_ms,
                    "b_error": outcome.error,
                    "b_next": outcome.next_attempt_at,
                    "b_delivered_at": None if outcome.status == DeliveryStatus.pending else now,
                }
                for delivery, outcome in outcomes
            ],
        )

    async def webhooks_succeeded(self, webhook_ids: Sequence[uuid.UUID]) -> None:
        """Clear the failing webhooks' `failing_since` (one statement; rows locked in id order)."""
        if not webhook_ids:
            return
        locked = (
            select(Webhook.id)
            .where(Webhook.id.in_(sorted(webhook_ids)), Webhook.failing_since.is_not(None))
            .order_by(Webhook.id)
            .with_for_update()
        )
        await self.session.execute(update(Webhook).where(Webhook.id.in_(locked)).values(failing_since=None))

    async def webhooks_failed(
        self, webhook_ids: Sequence[uuid.UUID], now: datetime
    ) -> dict[uuid.UUID, datetime | None]:
        """Note a failure of each; return since when each has been failing without a success (two statements
        for all of them; rows locked in id order)."""
        if not webhook_ids:
            return {}
        ids = sorted(webhook_ids)
        locked = (
            select(Webhook.id)
            .where(Webhook.id.in_(ids), Webhook.failing_since.is_(None))
            .order_by(Webhook.id)
            .with_for_update()
        )
        await self.session.execute(update(Webhook).where(Webhook.id.in_(locked)).values(failing_since=now))
        rows = await self.session.execute(
            select(Webhook.id, Webhook.failing_since).where(Webhook.id.in_(ids))
        )
        return {row[0]: row[1] for row in rows}

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
