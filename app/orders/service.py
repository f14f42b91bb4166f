"""The orders and bookings the bots recorded, listed for the store's owner (the bots write them, see
workers/bots/tools.py)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Tenant
from app.orders.repository import OrderRepository
from app.orders.schemas import BookingPage, BookingRead, OrderLineRead, OrderPage, OrderRead
from app.stores.errors import InvalidCursor
from app.stores.service import store as store_service


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list):
        raise InvalidCursor()
    return values


def decode_order_cursor(cursor: str) -> int:
    values = _decode(cursor)
    if len(values) != 1 or not isinstance(values[0], int):
        raise InvalidCursor()
    number: int = values[0]
    return number


def decode_booking_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        starts_at, booking_id = _decode(cursor)
        after = datetime.fromisoformat(starts_at), uuid.UUID(booking_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
    if after[0].tzinfo is None:
        raise InvalidCursor()
    return after


class OrderService:
    async def list_orders(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, limit: int, cursor: str | None
    ) -> OrderPage:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        before = decode_order_cursor(cursor) if cursor is not None else None
        # One extra row tells whether there is a next page without a COUNT.
        rows = await OrderRepository.for_tenant(session, tenant.id).list_orders(
            store.id, limit=limit + 1, before_number=before
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0].number) if len(rows) > limit else None
        items = [
            OrderRead(
                id=order.id,
                number=order.number,
                status=order.status,
                customer_name=order.customer_name,
                chat_jid=chat_jid,
                lines=[OrderLineRead.model_validate(line) for line in order.lines],
                total_cents=order.total_cents,
                fulfilment=order.fulfilment,
                address=order.address,
                created_at=order.created_at,
            )
            for order, chat_jid in page
        ]
        return OrderPage(items=items, next_cursor=next_cursor)

    async def list_upcoming_bookings(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        limit: int,
        cursor: str | None,
        now: datetime | None = None,
    ) -> BookingPage:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        after = decode_booking_cursor(cursor) if cursor is not None else None
        rows = await OrderRepository.for_tenant(session, tenant.id).list_upcoming_bookings(
            store.id, now=now or datetime.now(UTC), limit=limit + 1, after=after
        )
        page = rows[:limit]
        last = page[-1][0] if page else None
        next_cursor = (
            encode_cursor(last.starts_at.isoformat(), str(last.id)) if last and len(rows) > limit else None
        )
        items = [
            BookingRead(
                id=booking.id,
                service=booking.service,
                starts_at=booking.starts_at,
                customer_name=booking.customer_name,
                status=booking.status,
                chat_jid=chat_jid,
                created_at=booking.created_at,
            )
            for booking, chat_jid in page
        ]
        return BookingPage(items=items, next_cursor=next_cursor)


order = OrderService()
