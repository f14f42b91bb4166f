"""`BotTools` over the worker's database transaction: whatever a bot books or orders commits, or rolls back,
together with the bot's new state and replies."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.bots.configs import DEFAULT_TIMEZONE
from app.models import Booking as BookingRow
from app.models import BookingStatus
from workers.bots.base import Booking, BotTools, Order
from workers.bots.repository import BotRepository

log = structlog.get_logger(__name__)


class DatabaseBotTools(BotTools):
    """Scoped to one store and one chat (conversation).

    `now` should be the `BotContext.now` the bot gets, so that "upcoming" means the same for both. Days given
    to `taken_slots` are read in the store's time zone (its booking config's `timezone`), like the bot does.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        store_id: uuid.UUID,
        conversation_id: uuid.UUID,
        chat_jid: str,
        now: datetime | None = None,
    ) -> None:
        self.repository = BotRepository(session, store_id)
        self.store_id = store_id
        self.conversation_id = conversation_id
        self.chat_jid = chat_jid
        self.now = now or datetime.now(UTC)
        self._zone: ZoneInfo | None = None

    async def zone(self) -> ZoneInfo:
        if self._zone is None:
            name = (await self.repository.bot_config()).get("timezone") or DEFAULT_TIMEZONE
            try:
                self._zone = ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                self._zone = ZoneInfo(DEFAULT_TIMEZONE)
        return self._zone

    async def taken_slots(self, service: str, day: date) -> list[datetime]:
        zone = await self.zone()
        start = datetime.combine(day, time(), tzinfo=zone)
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
        return await self.repository.booked_starts(service, start, end)

    async def book(self, service: str, starts_at: datetime, customer_name: str) -> Booking | None:
        row = await self.repository.insert_booking(
            conversation_id=self.conversation_id,
            service=service,
            starts_at=starts_at,
            customer_name=customer_name,
        )
        if row is None:
            log.info("slot already booked", store_id=str(self.store_id), chat=self.chat_jid, service=service)
            return None
        return _booking(row)

    async def bookings(self) -> list[Booking]:
        rows = await self.repository.conversation_bookings(self.conversation_id, after=self.now)
        return [_booking(row) for row in rows]

    async def cancel_booking(self, booking_id: uuid.UUID) -> bool:
        return await self.repository.cancel_booking(booking_id, conversation_id=self.conversation_id)

    async def place_order(self, order: Order) -> Order:
        number = await self.repository.next_order_number()
        await self.repository.insert_order(
            id=order.id,
            conversation_id=self.conversation_id,
            number=number,
            lines=[dataclasses.asdict(line) for line in order.lines],
            total_cents=order.total_cents,
            fulfilment=order.fulfilment,
            address=order.address,
            status="confirmed",
            customer_name=order.customer_name,
        )
        return dataclasses.replace(order, number=number)


def _booking(row: BookingRow) -> Booking:
    assert row.status == BookingStatus.booked
    return Booking(id=row.id, service=row.service, starts_at=row.starts_at, customer_name=row.customer_name)
