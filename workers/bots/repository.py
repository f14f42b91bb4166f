"""Every query the bots' tools make, scoped to one store: `_bookings()` is the only way to booking rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Booking, BookingStatus, Order, OrderCounter, Store

# The partial unique index that lets one booking per (store, service, start) through (app/models/booking.py).
SLOT_INDEX = "uq_bookings_store_service_starts_at"


class BotRepository:
    def __init__(self, session: AsyncSession, store_id: uuid.UUID) -> None:
        self.session = session
        self.store_id = store_id

    def _bookings(self) -> Select[Booking]:
        return select(Booking).where(Booking.store_id == self.store_id)

    async def bot_config(self) -> dict[str, Any]:
        config = await self.session.scalar(select(Store.bot_config).where(Store.id == self.store_id))
        return config or {}

    async def booked_starts(self, service: str, start: datetime, end: datetime) -> list[datetime]:
        statement = (
            self._bookings()
            .with_only_columns(Booking.starts_at)
            .where(
                Booking.service == service,
                Booking.status == BookingStatus.booked,
                Booking.starts_at >= start,
                Booking.starts_at < end,
            )
            .order_by(Booking.starts_at)
        )
        return list(await self.session.scalars(statement))

    async def insert_booking(
        self, *, conversation_id: uuid.UUID, service: str, starts_at: datetime, customer_name: str
    ) -> Booking | None:
        """The new booking, or None when the slot is taken. A savepoint wraps the insert: a unique violation
        aborts only the savepoint, and the caller's transaction (the worker's) goes on."""
        booking = Booking(
            store_id=self.store_id,
            conversation_id=conversation_id,
            service=service,
            starts_at=starts_at,
            customer_name=customer_name,
            status=BookingStatus.booked.value,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(booking)
                await self.session.flush()
        except IntegrityError as exc:
            if _constraint_name(exc) != SLOT_INDEX:
                raise
            return None
        return booking

    async def conversation_bookings(self, conversation_id: uuid.UUID, *, after: datetime) -> list[Booking]:
        statement = (
            self._bookings()
            .where(
                Booking.conversation_id == conversation_id,
                Booking.status == BookingStatus.booked,
                Booking.starts_at > after,
            )
            .order_by(Booking.starts_at, Booking.id)
        )
        return list(await self.session.scalars(statement))

    async def cancel_booking(self, booking_id: uuid.UUID, *, conversation_id: uuid.UUID) -> bool:
        statement = (
            update(Booking)
            .where(
                Booking.store_id == self.store_id,
                Booking.conversation_id == conversation_id,
                Booking.id == booking_id,
                Booking.status == BookingStatus.booked,
            )
            .values(status=BookingStatus.cancelled.value)
            .returning(Booking.id)
        )
        return (await self.session.scalar(statement)) is not None

    async def next_order_number(self) -> int:
        """1, 2, 3... per store. The counter row stays locked until the transaction ends, so concurrent
        checkouts of one store take turns instead of colliding; a rolled-back order gives its number back."""
        statement = (
            insert(OrderCounter)
            .values(store_id=self.store_id, last_number=1)
            .on_conflict_do_update(
                index_elements=[OrderCounter.store_id], set_={"last_number": OrderCounter.last_number + 1}
            )
            .returning(OrderCounter.last_number)
        )
        number = await self.session.scalar(statement)
        assert number is not None
        return number

    async def insert_order(self, **values: Any) -> Order:
        order = Order(store_id=self.store_id, **values)
        self.session.add(order)
        await self.session.flush()
        return order


def _constraint_name(exc: IntegrityError) -> str | None:
    # asyncpg's UniqueViolationError (the DBAPI error's cause) names the violated constraint or index.
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else None
