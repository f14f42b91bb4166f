from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.bots.configs import BookingConfig, EchoConfig, MenuConfig, OrdersConfig, WebhookBotSettings


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

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The config is checked after the body, against the model its kind selects (so that errors are named
        # `body.config.<field>`); the document says the same thing as one schema per kind.
        return handler(_DOCUMENTED_BODY.core_schema)


class EchoBot(BaseModel):
    kind: Literal["echo"]
    config: EchoConfig = Field(default_factory=EchoConfig)


class MenuBot(BaseModel):
    kind: Literal["menu"]
    config: MenuConfig


class BookingBot(BaseModel):
    kind: Literal["booking"]
    config: BookingConfig


class OrdersBot(BaseModel):
    kind: Literal["orders"]
    config: OrdersConfig


class WebhookBot(BaseModel):
    kind: Literal["webhook"]
    config: WebhookBotSettings


_DOCUMENTED_BODY: TypeAdapter[Any] = TypeAdapter(
    Annotated[EchoBot | MenuBot | BookingBot | OrdersBot | WebhookBot, Field(discriminator="kind")]
)


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
