"""The orders and bookings the bots recorded, listed for the store's owner (the bots write them, see
workers/bots/tools.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Tenant
from app.orders.repository import BookingRepository, OrderRepository
from app.orders.schemas import BookingPage, BookingRead, OrderLineRead, OrderPage, OrderRead
from app.stores.service import store as store_service


class OrderService:
    async def list_orders(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, limit: int, cursor: str | None
    ) -> OrderPage:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        page, next_cursor = await OrderRepository.for_tenant(session, tenant.id).list_page(
            store.id, limit=limit, cursor=cursor
        )
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
        page, next_cursor = await BookingRepository.for_tenant(session, tenant.id).list_upcoming_page(
            store.id, now=now or datetime.now(UTC), limit=limit, cursor=cursor
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
