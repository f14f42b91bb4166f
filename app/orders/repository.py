from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select

from app.kit.pagination import Keyset
from app.kit.repository import TenantScopedRepository
from app.models import Booking, BookingStatus, Conversation, Order, Store

# Newest first, on the store's order number (unique per store).
ORDER_ORDER = Keyset((Order.number,), descending=True)
# Soonest first, on (starts_at, id).
BOOKING_ORDER = Keyset((Booking.starts_at, Booking.id))


class OrderRepository(TenantScopedRepository[Order]):
    """Orders, scoped to one tenant through their store."""

    model = Order

    def get_readable_statement(self) -> Select[Order]:
        return (
            self.get_base_statement()
            .join(Store, Store.id == Order.store_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    async def list_page(
        self, store_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> tuple[list[tuple[Order, str | None]], str | None]:
        """Each order with its chat (null when the chat was deleted), newest first."""
        statement = (
            self.get_readable_statement()
            .add_columns(Conversation.chat_jid)
            .outerjoin(Conversation, Conversation.id == Order.conversation_id)
            .where(Order.store_id == store_id)
        )
        statement = ORDER_ORDER.apply(statement, limit=limit, cursor=cursor)
        rows = [(row[0], row[1]) for row in await self.session.execute(statement)]
        return ORDER_ORDER.page(rows, limit=limit, key=lambda row: (row[0].number,))


class BookingRepository(TenantScopedRepository[Booking]):
    """Bookings, scoped to one tenant through their store."""

    model = Booking

    def get_readable_statement(self) -> Select[Booking]:
        return (
            self.get_base_statement()
            .join(Store, Store.id == Booking.store_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    async def list_upcoming_page(
        self, store_id: uuid.UUID, *, now: datetime, limit: int, cursor: str | None
    ) -> tuple[list[tuple[Booking, str | None]], str | None]:
        """Live bookings from `now` on, each with its chat (null when deleted), soonest first."""
        statement = (
            self.get_readable_statement()
            .add_columns(Conversation.chat_jid)
            .outerjoin(Conversation, Conversation.id == Booking.conversation_id)
            .where(
                Booking.store_id == store_id,
                Booking.status == BookingStatus.booked,
                Booking.starts_at >= now,
            )
        )
        statement = BOOKING_ORDER.apply(statement, limit=limit, cursor=cursor)
        rows = [(row[0], row[1]) for row in await self.session.execute(statement)]
        return BOOKING_ORDER.page(rows, limit=limit, key=lambda row: (row[0].starts_at, row[0].id))
