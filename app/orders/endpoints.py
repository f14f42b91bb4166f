from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.dependencies import SessionDep
from app.kit.pagination import CURSOR_PATTERN
from app.orders.schemas import BookingPage, OrderPage
from app.orders.service import order as order_service
from app.stores.auth import StoresRead

router = APIRouter(prefix="/v1/stores")

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such store for this tenant"}}
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page (opaque).", pattern=CURSOR_PATTERN)
]


@router.get(
    "/{store_id}/orders", tags=["orders"], summary="The store's orders, newest first", responses=_NOT_FOUND
)
async def list_orders(
    store_id: str, auth: StoresRead, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> OrderPage:
    return await order_service.list_orders(
        session, tenant=auth.tenant, store_id=store_id, limit=limit, cursor=cursor
    )


@router.get(
    "/{store_id}/bookings",
    tags=["bookings"],
    summary="The store's upcoming bookings, soonest first",
    responses=_NOT_FOUND,
)
async def list_bookings(
    store_id: str, auth: StoresRead, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> BookingPage:
    return await order_service.list_upcoming_bookings(
        session, tenant=auth.tenant, store_id=store_id, limit=limit, cursor=cursor
    )
