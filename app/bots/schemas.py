from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer


class BotKind(StrEnum):
    echo = "echo"
    menu = "menu"
    booking = "booking"
    orders = "orders"
    webhook = "webhook"


_CONFIG_DESCRIPTION = (
    "The kind's settings, checked against its model: echo takes none; menu takes greeting, options (each with "
    "title, keywords, answer, options, handoff) and handoff_message; booking takes services (name, "
    "duration_minutes), opening_hours, slot_minutes, timezone, days_ahead, greeting; orders takes catalog "
    "(id, name, price_cents, category), currency, delivery_enabled, delivery_fee_cents, pickup_enabled, "
    "greeting. Menu, booking and orders take language: es (default) or en. webhook takes url and timeout_ms "
    "(the store's backend answers each message; the signing secret is returned once, as `secret`)."
)


class BotUpdate(BaseModel):
    kind: BotKind = Field(description="Which bot answers the store's customers.")
    config: dict[str, Any] = Field(default_factory=dict, description=_CONFIG_DESCRIPTION)


class BotRead(BaseModel):
    kind: str
    config: dict[str, Any] = Field(description="As validated: defaults filled in.")
    secret: str | None = Field(
        None, description="webhook: the `whsec_...` signing secret, returned once, when it is made."
    )

    @model_serializer(mode="wrap")
    def _secret_only_when_made(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("secret") is None:
            data.pop("secret", None)
        return data
