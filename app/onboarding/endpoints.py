from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.dependencies import RedisDep, SessionDep, SettingsDep
from app.kit.errors import error_body
from app.models import StoreStatus
from app.onboarding.auth import OnboardingLinkAccess
from app.onboarding.errors import OnboardingLinkNotFound
from app.onboarding.schemas import (
    OnboardingLinkCreate,
    OnboardingLinkCreated,
    OnboardingLinkList,
    OnboardingLinkRead,
    OnboardingStatus,
)
from app.onboarding.service import OnboardingAccess
from app.onboarding.service import onboarding as onboarding_service
from app.stores.auth import StoresRead, StoresWrite
from app.stores.schemas import PairingCodeRead, PairingCodeRequest, QrCodeRead, QrFormat
from app.stores.service import StoreEventStream, render_qr
from app.stores.service import store as store_service

# The store's side: its owner (or an integrator's key) makes and revokes links.
links_router = APIRouter(prefix="/v1/stores/{store_id}/onboarding-links", tags=["onboarding"])
# The link's side: the token is the only credential.
router = APIRouter(prefix="/v1/onboarding/{token}", tags=["onboarding"])

EVENTS_PING_SECONDS = 15
_GONE: dict[int | str, dict[str, Any]] = {404: {"description": "Guessed, expired, revoked or finished link"}}
_QR_MEDIA_TYPES = {QrFormat.svg: "image/svg+xml", QrFormat.png: "image/png"}


@links_router.post("", status_code=status.HTTP_201_CREATED, summary="Make an onboarding link for the store")
async def create_link(
    store_id: str,
    auth: StoresWrite,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    body: OnboardingLinkCreate | None = None,
) -> OnboardingLinkCreated:
    assert settings.secret_key
    ttl = (body or OnboardingLinkCreate()).expires_in
    link, token = await onboarding_service.create(
        session, settings.secret_key, subject=auth, store_id=store_id, ttl_seconds=ttl
    )
    # The web page at /onboard/<token> is the next issue's; it stands on the /v1/onboarding/<token> API.
    url = f"{str(request.base_url).rstrip('/')}/onboard/{token}"
    return OnboardingLinkCreated(id=link.id, url=url, expires_at=link.expires_at)


@links_router.get("", summary="The store's live onboarding links")
async def list_links(store_id: str, auth: StoresRead, session: SessionDep) -> OnboardingLinkList:
    links = await onboarding_service.list_links(session, subject=auth, store_id=store_id)
    return OnboardingLinkList(items=[OnboardingLinkRead.model_validate(link) for link in links])


@links_router.delete(
    "/{link_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an onboarding link", responses=_GONE
)
async def revoke_link(store_id: str, link_id: str, auth: StoresWrite, session: SessionDep) -> None:
    await onboarding_service.revoke(session, subject=auth, store_id=store_id, link_id=link_id)


def _gone() -> JSONResponse:
    # Returned, not raised: the request's transaction must still commit the link's completion.
    error = OnboardingLinkNotFound()
    return JSONResponse(error_body(error.code, error.message), status_code=error.status_code)


def _status(access: OnboardingAccess) -> OnboardingStatus:
    if access.finished:
        return OnboardingStatus(status=StoreStatus.connected, store_name=None)
    store = access.store
    return OnboardingStatus(
        status=StoreStatus(store.status),
        store_name=store.name,
        status_reason=store.status_reason,
        expires_at=access.link.expires_at,
    )


@router.get(
    "", summary="The link's store: name and status ('connected' and nothing more once done)", responses=_GONE
)
async def link_status(access: OnboardingLinkAccess) -> OnboardingStatus:
    return _status(access)


@router.post(
    "/link",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start pairing by QR code",
    response_model=OnboardingStatus,
)
async def start_linking(
    access: OnboardingLinkAccess, session: SessionDep, redis: RedisDep
) -> Response | OnboardingStatus:
    if access.finished:
        return _gone()
    store = await store_service.link(session, redis, tenant=access.tenant, store_id=str(access.store.id))
    return OnboardingStatus(
        status=StoreStatus(store.status), store_name=store.name, expires_at=access.link.expires_at
    )


@router.get(
    "/qr",
    summary="The QR code to scan, as JSON, SVG or PNG",
    response_model=QrCodeRead,
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}, **_GONE},
)
async def link_qr(
    access: OnboardingLinkAccess,
    session: SessionDep,
    redis: RedisDep,
    qr_format: Annotated[QrFormat, Query(alias="format")] = QrFormat.json,
) -> Response:
    if access.finished:
        return _gone()
    qr = await store_service.get_qr(session, redis, tenant=access.tenant, store_id=str(access.store.id))
    headers = {"Cache-Control": "no-store"}
    if qr_format is QrFormat.json:
        return JSONResponse(qr.model_dump(mode="json"), headers=headers)
    return Response(render_qr(qr.code, qr_format), media_type=_QR_MEDIA_TYPES[qr_format], headers=headers)


@router.get(
    "/events",
    summary="Live status and QR codes (server-sent events), until the store is connected",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_GONE},
)
async def link_events(access: OnboardingLinkAccess, session: SessionDep, redis: RedisDep) -> Response:
    if access.finished:
        return _gone()
    stream = await store_service.open_events(
        session, redis, tenant=access.tenant, store_id=str(access.store.id)
    )
    return EventSourceResponse(_until_connected(stream), ping=EVENTS_PING_SECONDS)


async def _until_connected(stream: StoreEventStream) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in stream.events():
            if event.type == "status" and json.loads(event.data).get("status") == StoreStatus.connected:
                # The link's job is done: say so, with nothing about the number, and end.
                yield ServerSentEvent(
                    data=json.dumps({"type": "status", "status": "connected"}), event="status"
                )
                return
            yield ServerSentEvent(data=event.data, event=event.type)
    finally:
        await stream.close()


@router.post(
    "/pairing-code",
    summary="Link by phone number: get a code to type on the phone",
    response_model=PairingCodeRead,
    responses={**_GONE, 504: {"description": "No code in time"}},
)
async def link_pairing_code(
    body: PairingCodeRequest, access: OnboardingLinkAccess, session: SessionDep, redis: RedisDep
) -> Response | PairingCodeRead:
    if access.finished:
        return _gone()
    return await store_service.request_pairing_code(
        session, redis, tenant=access.tenant, store_id=str(access.store.id), phone=body.phone
    )
