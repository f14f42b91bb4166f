"""A store's bot: which kind answers its customers and with what configuration.

The worker reads `stores.bot_kind` / `stores.bot_config` for every message it handles, so a change applies
from the next message on. Conversations keep their bot state: each bot recognises its own state and starts
over on another bot's.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.bots.configs import CONFIG_MODELS
from app.bots.errors import InvalidBotConfig
from app.bots.schemas import BotKind, BotRead
from app.models import Tenant
from app.stores.repository import StoreRepository
from app.stores.service import store as store_service


def validate_config(kind: BotKind, config: dict[str, Any]) -> dict[str, Any]:
    """The config as the bot will read it (defaults filled in), or InvalidBotConfig naming each wrong field."""
    try:
        model = CONFIG_MODELS[kind.value].model_validate(config)
    except ValidationError as exc:
        raise InvalidBotConfig(exc.errors()) from exc
    return model.model_dump(mode="json")


class BotService:
    async def get(self, session: AsyncSession, *, tenant: Tenant, store_id: str) -> BotRead:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        return BotRead(kind=store.bot_kind, config=store.bot_config)

    async def update(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, kind: BotKind, config: dict[str, Any]
    ) -> BotRead:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        validated = validate_config(kind, config)
        store = await StoreRepository.for_tenant(session, tenant.id).update(
            store, update_dict={"bot_kind": kind.value, "bot_config": validated}
        )
        return BotRead(kind=store.bot_kind, config=store.bot_config)


bot = BotService()
