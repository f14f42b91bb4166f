"""All SQL of webhooks: the tenant's webhooks and delivery log (the API), and the fan-out from the change log
(the worker's dispatcher and the API's replay)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.events.repository import EventPosition
from app.kit.pagination import Keyset
from app.kit.repository import RepositoryBase, TenantScopedRepository
from app.models import Conversation, DeliveryStatus, Event, Message, Webhook, WebhookDelivery
from app.models import WebhookDispatchPosition as Position

# Newest first, on `ix_webhook_deliveries_log` (webhook_id, seq).
DELIVERY_ORDER = Keyset((WebhookDelivery.seq,), descending=True)


class WebhookRepository(TenantScopedRepository[Webhook]):
    model = Webhook

    def get_readable_statement(self) -> Select[Webhook]:
        return self.get_base_statement().where(Webhook.tenant_id == self.tenant_id)

    async def get(
        self, store_id: uuid.UUID, webhook_id: uuid.UUID, *, for_update: bool = False
    ) -> Webhook | None:
        statement = self.get_readable_statement().where(
            Webhook.store_id == store_id, Webhook.id == webhook_id
        )
        if for_update:
            statement = statement.with_for_update()
        return await self.get_one_or_none(statement)

    async def list_for_store(self, store_id: uuid.UUID) -> Sequence[Webhook]:
        statement = (
            self.get_readable_statement()
            .where(Webhook.store_id == store_id)
            .order_by(Webhook.created_at, Webhook.id)
        )
        return await self.get_all(statement)

    async def delete(self, webhook: Webhook) -> None:
        await self.session.delete(webhook)
        await self.session.flush()


class DeliveryRepository(TenantScopedRepository[WebhookDelivery]):
    """A tenant's deliveries, scoped through their webhook."""

    model = WebhookDelivery

    def get_readable_statement(self) -> Select[WebhookDelivery]:
        return (
            self.get_base_statement()
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(Webhook.tenant_id == self.tenant_id)
        )

    async def list_page(
        self, webhook_id: uuid.UUID, *, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[WebhookDelivery], str | None]:
        statement = self.get_readable_statement().where(WebhookDelivery.webhook_id == webhook_id)
        if status is not None:
            statement = statement.where(WebhookDelivery.status == status)
        statement = DELIVERY_ORDER.apply(statement, limit=limit, cursor=cursor)
        rows = list(await self.get_all(statement))
        return DELIVERY_ORDER.page(rows, limit=limit, key=lambda row: (row.seq,))

    async def get(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        statement = self.get_readable_statement().where(
            WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.id == delivery_id
        )
        return await self.get_one_or_none(statement)


@dataclass(frozen=True)
class NewDelivery:
    webhook_id: uuid.UUID
    store_id: uuid.UUID
    event_id: int
    event: str
    message_id: str
    order_key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class DeliveryRef:
    """What a delivery's trigger (its stream entry) carries."""

    id: uuid.UUID
    store_id: uuid.UUID
    webhook_id: uuid.UUID
    order_key: str


class FanoutRepository(RepositoryBase[Event]):
    """System-wide reads and writes of the fan-out: callers have checked whose stores these are."""

    model = Event

    async def enabled_webhooks(self, store_ids: Sequence[uuid.UUID]) -> list[Webhook]:
        statement = (
            select(Webhook)
            .where(Webhook.store_id.in_(store_ids), Webhook.enabled.is_(True))
            .order_by(Webhook.created_at, Webhook.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def stores_with_webhooks(self, store_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        statement = select(Webhook.store_id).where(Webhook.store_id.in_(store_ids), Webhook.enabled.is_(True))
        return set((await self.session.scalars(statement.distinct())).all())

    async def context(
        self, events: Sequence[Event]
    ) -> tuple[dict[uuid.UUID, Message], dict[uuid.UUID, Conversation]]:
        """The messages and conversations the events speak of, as of now."""
        message_ids = {e.message_id for e in events if e.message_id is not None}
        conversation_ids = {e.conversation_id for e in events if e.conversation_id is not None}
        messages: dict[uuid.UUID, Message] = {}
        conversations: dict[uuid.UUID, Conversation] = {}
        if message_ids:
            for message in await self.session.scalars(select(Message).where(Message.id.in_(message_ids))):
                messages[message.id] = message
        if conversation_ids:
            statement = select(Conversation).where(Conversation.id.in_(conversation_ids))
            for conversation in await self.session.scalars(statement):
                conversations[conversation.id] = conversation
        return messages, conversations

    async def events_between(
        self,
        store_id: uuid.UUID,
        since: datetime,
        until: datetime,
        kinds: Sequence[str],
        *,
        after: int,
        limit: int,
    ) -> list[Event]:
        """A store's events of a time window, in the order they happened (id; replay), after event id `after`."""
        statement = (
            select(Event)
            .where(
                Event.store_id == store_id,
                Event.created_at >= since,
                Event.created_at < until,
                Event.kind.in_(kinds),
                Event.id > after,
            )
            .order_by(Event.id)
            .limit(limit)
        )
        return list((await self.session.scalars(statement)).all())

    async def add_deliveries(
        self, deliveries: Sequence[NewDelivery], *, now: datetime, give_up_at: datetime
    ) -> list[DeliveryRef]:
        if not deliveries:
            return []
        ids = [uuid.uuid4() for _ in deliveries]
        rows = [
            {
                "id": delivery_id,
                "webhook_id": d.webhook_id,
                "store_id": d.store_id,
                "event_id": d.event_id,
                "event": d.event,
                "message_id": d.message_id,
                "order_key": d.order_key,
                "payload": d.payload,
                "status": DeliveryStatus.pending,
                "attempts": 0,
                "next_attempt_at": now,
                "give_up_at": give_up_at,
            }
            for delivery_id, d in zip(ids, deliveries, strict=True)
        ]
        # One statement, rows in the given order: `seq` (an identity) follows it, which is the chains' order.
        await self.session.execute(insert(WebhookDelivery), rows)
        return [
            DeliveryRef(delivery_id, d.store_id, d.webhook_id, d.order_key)
            for delivery_id, d in zip(ids, deliveries, strict=True)
        ]

    # --- positions -----------------------------------------------------------------------------------------
    async def start_position(self, store_id: uuid.UUID, horizon: int, *, reset: bool) -> None:
        """Where a store's fan-out starts: the present (what committed before is not sent; a replay sends it).
        `reset` (the store had no webhook until now) moves an old position of an earlier webhook up to the
        present, so that a new webhook does not receive what happened while the store had none."""
        statement = pg_insert(Position).values(store_id=store_id, xid=max(0, horizon - 1), event_id=2**62)
        if reset:
            statement = statement.on_conflict_do_update(
                index_elements=[Position.store_id],
                set_={
                    "xid": statement.excluded.xid,
                    "event_id": statement.excluded.event_id,
                    "updated_at": func.now(),
                },
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=[Position.store_id])
        await self.session.execute(statement)

    async def lock_positions(self, store_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventPosition]:
        """The stores' positions, locked until the transaction ends (a store's dispatcher of a moment ago that
        lost its lease cannot write the same events' deliveries twice)."""
        statement = (
            select(Position)
            .where(Position.store_id.in_(store_ids))
            .order_by(Position.store_id)
            .with_for_update(skip_locked=True)
        )
        return {p.store_id: EventPosition(p.xid, p.event_id) for p in await self.session.scalars(statement)}

    async def save_positions(self, positions: dict[uuid.UUID, EventPosition]) -> None:
        """One statement for all the stores (executemany): a round trip per store cost a fan-out round of a
        hundred stores a hundred round trips."""
        if not positions:
            return
        table = cast(Table, Position.__table__)
        statement = (
            update(table)
            .where(table.c.store_id == bindparam("b_store_id"))
            .values(xid=bindparam("b_xid"), event_id=bindparam("b_event_id"), updated_at=func.now())
        )
        await self.session.execute(
            statement,
            [
                {"b_store_id": store_id, "b_xid": position.xid, "b_event_id": position.id}
                for store_id, position in sorted(positions.items())
            ],
        )
