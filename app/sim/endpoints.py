"""Mounted only with MOSTRADOR_WHATSAPP_DRIVER=simulator (app/main.py); elsewhere these paths are 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.dependencies import SessionDep, SimRedisDep
from app.sim.schemas import (
    ChatJid,
    FaultAccepted,
    FaultRequest,
    InboundAccepted,
    InboundRequest,
    OutboundPage,
    ScanAccepted,
    ScanRequest,
)
from app.sim.service import sim as sim_service
from app.stores.auth import MessagesRead, MessagesSend, StoresWrite

router = APIRouter(prefix="/v1/sim/stores/{store_id}", tags=["simulator"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such store for this tenant"}}


@router.post(
    "/scan",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Scan the store's current QR code with a simulated phone",
    responses={**_NOT_FOUND, 409: {"description": "No QR code is showing"}},
)
async def scan(
    store_id: str,
    auth: StoresWrite,
    session: SessionDep,
    redis: SimRedisDep,
    body: ScanRequest | None = None,
) -> ScanAccepted:
    phone = await sim_service.scan(
        session, redis, tenant=auth.tenant, store_id=store_id, phone=body.phone if body else None
    )
    return ScanAccepted(phone=phone)


@router.post(
    "/inbound",
    status_code=status.HTTP_202_ACCEPTED,
    summary="A customer sends the store a message: a text, or a file (image, video, audio, document); with "
    "`from_me`, the owner writes from the phone",
    responses=_NOT_FOUND,
)
async def inbound(
    store_id: str, body: InboundRequest, auth: MessagesSend, session: SessionDep, redis: SimRedisDep
) -> InboundAccepted:
    message_id = await sim_service.inbound(
        session,
        redis,
        tenant=auth.tenant,
        store_id=store_id,
        sender=body.from_,
        text=body.text,
        message_id=body.id,
        name=body.name,
        media=body.media,
        from_me=body.from_me,
        lid=body.lid,
        hide_phone=body.hide_phone,
    )
    return InboundAccepted(id=message_id)


@router.get("/outbound", summary="What the store sent, oldest first", responses=_NOT_FOUND)
async def outbound(
    store_id: str,
    auth: MessagesRead,
    session: SessionDep,
    redis: SimRedisDep,
    chat: Annotated[ChatJid | None, Query(description="Only this chat: a phone number or a JID.")] = None,
) -> OutboundPage:
    items = await sim_service.outbound(session, redis, tenant=auth.tenant, store_id=store_id, chat_jid=chat)
    return OutboundPage(items=items)


@router.get(
    "/outbound/{message_id}/media",
    summary="The bytes of a media message the store sent",
    response_class=Response,
    responses={200: {"content": {"*/*": {}}}, 404: {"description": "No such media message for this tenant"}},
)
async def outbound_media(
    store_id: str, message_id: str, auth: MessagesRead, session: SessionDep, redis: SimRedisDep
) -> Response:
    data, mime = await sim_service.outbound_media(
        session, redis, tenant=auth.tenant, store_id=store_id, message_id=message_id
    )
    return Response(content=data, media_type=mime)


@router.post(
    "/fault",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Inject a network fault into the store's connection",
    responses=_NOT_FOUND,
)
async def fault(
    store_id: str, body: FaultRequest, auth: StoresWrite, session: SessionDep, redis: SimRedisDep
) -> FaultAccepted:
    await sim_service.fault(session, redis, tenant=auth.tenant, store_id=store_id, kind=body.kind)
    return FaultAccepted(kind=body.kind)
