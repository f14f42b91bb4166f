from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.dependencies import RedisDep, SessionDep
from app.kit.pagination import CURSOR_PATTERN
from app.stores.auth import StoresCreate, StoresRead, StoresWrite
from app.stores.schemas import (
    PairingCodeRead,
    PairingCodeRequest,
    QrCodeRead,
    QrFormat,
    StoreCreate,
    StorePage,
    StoreRead,
    StoreUpdate,
)
from app.stores.service import StoreEventStream, render_qr
from app.stores.service import store as store_service

router = APIRouter(prefix="/v1/stores", tags=["stores"])

EVENTS_PING_SECONDS = 15
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such store for this tenant"}}
_QR_MEDIA_TYPES = {QrFormat.svg: "image/svg+xml", QrFormat.png: "image/png"}


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a store")
async def create_store(body: StoreCreate, auth: StoresCreate, session: SessionDep) -> StoreRead:
    store = await store_service.create(session, tenant=auth.tenant, name=body.name)
    return StoreRead.model_validate(store)


@router.get("", summary="List the tenant's stores, in creation order")
async def list_stores(
    auth: StoresRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page (opaque).", pattern=CURSOR_PATTERN)
    ] = None,
) -> StorePage:
    stores, next_cursor = await store_service.list_page(
        session, tenant=auth.tenant, limit=limit, cursor=cursor, only_store=auth.store_id
    )
    return StorePage(items=[StoreRead.model_validate(s) for s in stores], next_cursor=next_cursor)


@router.get("/{store_id}", summary="Get a store", responses=_NOT_FOUND)
async def get_store(store_id: str, auth: StoresRead, session: SessionDep) -> StoreRead:
    store = await store_service.get(session, tenant=auth.tenant, store_id=store_id)
    return StoreRead.model_validate(store)


@router.patch(
    "/{store_id}",
    summary="Change the store's settings",
    description="Each settings group given replaces the store's; the others keep their value. An unknown "
    "group or field is a 422 naming it.",
    responses=_NOT_FOUND,
)
async def update_store(store_id: str, body: StoreUpdate, auth: StoresWrite, session: SessionDep) -> StoreRead:
    store = await store_service.update_settings(
        session, tenant=auth.tenant, store_id=store_id, settings=body.settings
    )
    return StoreRead.model_validate(store)


@router.post(
    "/{store_id}/link",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Link the store's WhatsApp number by QR code",
    description="The session manager starts pairing; follow `GET /events` (or poll `GET /qr`) for the QR code.",
    responses=_NOT_FOUND,
)
async def link_store(store_id: str, auth: StoresWrite, session: SessionDep, redis: RedisDep) -> StoreRead:
    store = await store_service.link(session, redis, tenant=auth.tenant, store_id=store_id)
    return StoreRead.model_validate(store)


@router.get(
    "/{store_id}/qr",
    summary="The QR code to scan, as JSON, SVG or PNG",
    response_model=QrCodeRead,
    responses={
        200: {"content": {"image/svg+xml": {}, "image/png": {}}},
        404: {"description": "No such store, or no QR code right now (the message says why)"},
    },
)
async def get_qr(
    store_id: str,
    auth: StoresRead,
    session: SessionDep,
    redis: RedisDep,
    qr_format: Annotated[QrFormat, Query(alias="format")] = QrFormat.json,
) -> Response:
    qr = await store_service.get_qr(session, redis, tenant=auth.tenant, store_id=store_id)
    # Codes rotate every 20-60 s: nothing may cache them.
    headers = {"Cache-Control": "no-store"}
    if qr_format is QrFormat.json:
        return JSONResponse(qr.model_dump(mode="json"), headers=headers)
    return Response(render_qr(qr.code, qr_format), media_type=_QR_MEDIA_TYPES[qr_format], headers=headers)


@router.get(
    "/{store_id}/events",
    summary="Live status and QR codes (server-sent events)",
    description="First a `status` event with the current status, then the current `qr` if one is showing, then "
    "every `qr`, `status` and `pairing_code` event as the session manager publishes it. Each event's data is "
    "its JSON payload, including a `type` field equal to the event name.",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_NOT_FOUND},
)
async def store_events(
    store_id: str, auth: StoresRead, session: SessionDep, redis: RedisDep
) -> EventSourceResponse:
    stream = await store_service.open_events(session, redis, tenant=auth.tenant, store_id=store_id)
    return EventSourceResponse(_sse(stream), ping=EVENTS_PING_SECONDS)


async def _sse(stream: StoreEventStream) -> AsyncIterator[ServerSentEvent]:
    # Cancelled when the client disconnects; closing the stream gives its Redis connection back.
    try:
        async for event in stream.events():
            yield ServerSentEvent(data=event.data, event=event.type)
    finally:
        await stream.close()


@router.post(
    "/{store_id}/pairing-code",
    summary="Link by phone number: get a code to type on the phone",
    description="Waits (up to 15 s) for the session manager to obtain the code from WhatsApp.",
    responses={
        **_NOT_FOUND,
        409: {"description": "The store is already connected"},
        504: {"description": "No code in time"},
    },
)
async def request_pairing_code(
    store_id: str, body: PairingCodeRequest, auth: StoresWrite, session: SessionDep, redis: RedisDep
) -> PairingCodeRead:
    return await store_service.request_pairing_code(
        session, redis, tenant=auth.tenant, store_id=store_id, phone=body.phone
    )


@router.post(
    "/{store_id}/logout",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Log the store's WhatsApp device out and keep it unlinked",
    responses=_NOT_FOUND,
)
async def logout_store(store_id: str, auth: StoresWrite, session: SessionDep, redis: RedisDep) -> StoreRead:
    store = await store_service.logout(session, redis, tenant=auth.tenant, store_id=store_id)
    return StoreRead.model_validate(store)
