from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Booking, BookingStatus, Conversation, Order, Store


class OrderRepository:
    """Every query on orders and bookings, scoped to one tenant by `_orders()` / `_bookings()`: each joins the
    store and filters on its tenant, so there is no unscoped way in."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    @classmethod
    def for_tenant(cls, session: AsyncSession, tenant_id: uuid.UUID) -> OrderRepository:
        return cls(session, tenant_id)

    def _orders(self) -> Select[Order, str]:  # chat_jid is null when the chat was deleted
        return (
            select(Order, Conversation.chat_jid)
            .join(Store, Store.id == Order.store_id)
            .outerjoin(Conversation, Conversation.id == Order.conversation_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    def _bookings(self) -> Select[Booking, str]:  # chat_jid is null when the chat was deleted
        return (
            select(Booking, Conversation.chat_jid)
            .join(Store, Store.id == Booking.store_id)
            .outerjoin(Conversation, Conversation.id == Booking.conversation_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    async def list_orders(
        self, store_id: uuid.UUID, *, limit: int, before_number: int | None
    ) -> list[tuple[Order, str | None]]:
        """Newest first, keyset-paginated on the store's order number."""
        statement = (
            self._orders().where(Order.store_id == store_id).order_by(Order.number.desc()).limit(limit)
        )
        if before_number is not None:
            statement = statement.where(Order.number < before_number)
        return [(row[0], row[1]) for row in await self.session.execute(statement)]

    async def list_upcoming_bookings(
        self, store_id: uuid.UUID, *, now: datetime, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[tuple[Booking, str | None]]:
        """Live bookings from `now` on, soonest first, keyset-paginated on (starts_at, id)."""
        statement = (
            self._bookings()
            .where(
                Booking.store_id == store_id,
                Booking.status == BookingStatus.booked,
                Booking.starts_at >= now,
            )
            .order_by(Booking.starts_at, Booking.id)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(tuple_(Booking.starts_at, Booking.id) > tuple_(*after))
        return [(row[0], row[1]) for row in await self.session.execute(statement)]
