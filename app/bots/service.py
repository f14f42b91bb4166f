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
from app.config import Settings
from app.models import Store, Tenant
from app.stores.repository import StoreRepository
from app.stores.service import store as store_service
from app.webhooks.service import check_url
from app.webhooks.signing import SecretBox, new_secret


def validate_config(kind: BotKind, config: dict[str, Any]) -> dict[str, Any]:
    """The config as the bot will read it (defaults filled in), or InvalidBotConfig naming each wrong field."""
    try:
        model = CONFIG_MODELS[kind.value].model_validate(config)
    except ValidationError as exc:
        raise InvalidBotConfig(exc.errors()) from exc
    return model.model_dump(mode="json")


def _public(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "secret_encrypted"}


class BotService:
    async def get(self, session: AsyncSession, *, tenant: Tenant, store_id: str) -> BotRead:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        return BotRead(kind=store.bot_kind, config=_public(store.bot_config))

    async def update(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        kind: BotKind,
        config: dict[str, Any],
        settings: Settings,
    ) -> BotRead:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        validated = validate_config(kind, config)
        secret = None
        if kind is BotKind.webhook:
            validated, secret = await self._webhook_config(store, config, validated, settings)
        store = await StoreRepository.for_tenant(session, tenant.id).update(
            store, update_dict={"bot_kind": kind.value, "bot_config": validated}
        )
        return BotRead(kind=store.bot_kind, config=_public(store.bot_config), secret=secret)

    async def _webhook_config(
        self, store: Store, config: dict[str, Any], validated: dict[str, Any], settings: Settings
    ) -> tuple[dict[str, Any], str | None]:
        """The URL checked like a webhook's; the store's signing secret kept, or made (and returned) once."""
        if "secret_encrypted" in config:
            raise InvalidBotConfig(
                [
                    {
                        "type": "extra_forbidden",
                        "loc": ("secret_encrypted",),
                        "msg": "set by the server",
                        "input": None,
                    }
                ]
            )
        await check_url(validated["url"], settings)
        kept = store.bot_config.get("secret_encrypted") if store.bot_kind == BotKind.webhook.value else None
        if kept:
            return {**validated, "secret_encrypted": kept}, None
        assert settings.secret_key
        secret = new_secret()
        return {**validated, "secret_encrypted": SecretBox(settings.secret_key).encrypt(secret)}, secret


bot = BotService()
