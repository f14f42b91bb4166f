from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.bots.schemas import BotRead, BotUpdate
from app.bots.service import bot as bot_service
from app.config import Settings
from app.dependencies import SessionDep, get_settings_dep
from app.stores.auth import StoresRead, StoresWrite

router = APIRouter(prefix="/v1/stores", tags=["bots"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such store for this tenant"}}


@router.get("/{store_id}/bot", summary="The store's bot and its configuration", responses=_NOT_FOUND)
async def get_bot(store_id: str, auth: StoresRead, session: SessionDep) -> BotRead:
    return await bot_service.get(session, tenant=auth.tenant, store_id=store_id)


@router.put(
    "/{store_id}/bot",
    summary="Choose the store's bot and configure it",
    description="Applies from the customers' next message. A wrong config is a 422 naming each wrong field, "
    "like `body.config.services.0.duration_minutes`.",
    responses=_NOT_FOUND,
)
async def put_bot(
    store_id: str,
    body: BotUpdate,
    auth: StoresWrite,
    session: SessionDep,
    settings: Annotated[Settings, Depends(get_settings_dep)],
) -> BotRead:
    return await bot_service.update(
        session, tenant=auth.tenant, store_id=store_id, kind=body.kind, config=body.config, settings=settings
    )
