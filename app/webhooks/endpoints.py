from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from redis.asyncio import Redis

from app.config import Settings
from app.dependencies import SessionDep, get_redis, get_settings_dep
from app.stores.auth import StoresRead, StoresWrite
from app.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    ReplayRequest,
    ReplayResult,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from app.webhooks.service import webhook as webhook_service

router = APIRouter(prefix="/v1/stores", tags=["webhooks"])

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such store, or no such webhook in it, for this tenant"}
}
_UNSAFE: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    422: {"description": "A bad body, or a URL that may not receive webhooks (`unsafe_url`)"},
}


@router.post(
    "/{store_id}/webhooks",
    status_code=201,
    summary="Subscribe a URL to the store's events",
    description="Returns the signing secret (`whsec_...`) once. Deliveries are signed the Standard Webhooks way "
    "(`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried for 24 h, in order per conversation. "
    "Events from now on are sent; earlier ones can be replayed.",
    responses=_UNSAFE,
)
async def create_webhook(
    store_id: str, body: WebhookCreate, auth: StoresWrite, session: SessionDep, settings: SettingsDep
) -> WebhookCreated:
    return await webhook_service.create(
        session, tenant=auth.tenant, store_id=store_id, body=body, settings=settings
    )


@router.get("/{store_id}/webhooks", summary="The store's webhooks", responses=_NOT_FOUND)
async def list_webhooks(store_id: str, auth: StoresRead, session: SessionDep) -> list[WebhookRead]:
    return await webhook_service.list(session, tenant=auth.tenant, store_id=store_id)


@router.get("/{store_id}/webhooks/{webhook_id}", summary="One webhook", responses=_NOT_FOUND)
async def get_webhook(store_id: str, webhook_id: str, auth: StoresRead, session: SessionDep) -> WebhookRead:
    found = await webhook_service.get(session, tenant=auth.tenant, store_id=store_id, webhook_id=webhook_id)
    return WebhookRead.model_validate(found)


@router.patch(
    "/{store_id}/webhooks/{webhook_id}",
    summary="Change a webhook's URL, events or description; enable or disable it",
    responses=_UNSAFE,
)
async def update_webhook(
    store_id: str,
    webhook_id: str,
    body: WebhookUpdate,
    auth: StoresWrite,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookRead:
    return await webhook_service.update(
        session, tenant=auth.tenant, store_id=store_id, webhook_id=webhook_id, body=body, settings=settings
    )


@router.delete(
    "/{store_id}/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook", responses=_NOT_FOUND
)
async def delete_webhook(store_id: str, webhook_id: str, auth: StoresWrite, session: SessionDep) -> Response:
    await webhook_service.delete(session, tenant=auth.tenant, store_id=store_id, webhook_id=webhook_id)
    return Response(status_code=204)


@router.post(
    "/{store_id}/webhooks/{webhook_id}/rotate-secret",
    summary="A new signing secret; the old one keeps signing for 24 h",
    description="Each delivery carries one signature per valid secret, so receivers may switch at leisure.",
    responses=_NOT_FOUND,
)
async def rotate_secret(
    store_id: str, webhook_id: str, auth: StoresWrite, session: SessionDep, settings: SettingsDep
) -> SecretRotated:
    return await webhook_service.rotate_secret(
        session, tenant=auth.tenant, store_id=store_id, webhook_id=webhook_id, settings=settings
    )


@router.get(
    "/{store_id}/webhooks/{webhook_id}/deliveries",
    summary="The webhook's delivery log, newest first",
    responses={**_NOT_FOUND, 422: {"description": "A cursor that this endpoint did not return"}},
)
async def list_deliveries(
    store_id: str,
    webhook_id: str,
    auth: StoresRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(description="`next_cursor` of the previous page (opaque).", pattern=r"^[A-Za-z0-9_-]{1,512}$"),
    ] = None,
    status: Literal["pending", "succeeded", "failed"] | None = None,
) -> DeliveryPage:
    return await webhook_service.deliveries(
        session,
        tenant=auth.tenant,
        store_id=store_id,
        webhook_id=webhook_id,
        limit=limit,
        cursor=cursor,
        status=status,
    )


@router.post(
    "/{store_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send one delivery again (same webhook-id, a fresh retry window)",
    responses={**_NOT_FOUND, 409: {"description": "The webhook is disabled"}},
)
async def redeliver(
    store_id: str,
    webhook_id: str,
    delivery_id: str,
    auth: StoresWrite,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
) -> DeliveryRead:
    return await webhook_service.redeliver(
        session,
        tenant=auth.tenant,
        store_id=store_id,
        webhook_id=webhook_id,
        delivery_id=delivery_id,
        settings=settings,
        redis=redis,
    )


@router.post(
    "/{store_id}/webhooks/{webhook_id}/replay",
    status_code=202,
    summary="Send every event of a time window again, in order",
    description="The way to recover after the receiver's outage: the window's events (all those the webhook "
    "subscribes to, or `events` of them) are queued again in the order they happened, each with its "
    "original `webhook-id` so a receiver can skip what it already has; payloads show the messages as of now.",
    responses={**_NOT_FOUND, 409: {"description": "The webhook is disabled"}},
)
async def replay(
    store_id: str,
    webhook_id: str,
    body: ReplayRequest,
    auth: StoresWrite,
    session: SessionDep,
    settings: SettingsDep,
    redis: RedisDep,
) -> ReplayResult:
    count = await webhook_service.replay(
        session,
        tenant=auth.tenant,
        store_id=store_id,
        webhook_id=webhook_id,
        body=body,
        settings=settings,
        redis=redis,
    )
    return ReplayResult(deliveries=count)
