from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.bots.configs import BookingConfig, EchoConfig, MenuConfig, OrdersConfig


class BotKind(StrEnum):
    echo = "echo"
    menu = "menu"
    booking = "booking"
    orders = "orders"


_CONFIG_DESCRIPTION = (
    "The kind's settings, checked against its model: echo takes none; menu takes greeting, options (each with "
    "title, keywords, answer, options, handoff) and handoff_message; booking takes services (name, "
    "duration_minutes), opening_hours, slot_minutes, timezone, days_ahead, greeting; orders takes catalog "
    "(id, name, price_cents, category), currency, delivery_enabled, delivery_fee_cents, pickup_enabled, "
    "greeting. Menu, booking and orders take language: es (default) or en."
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


_DOCUMENTED_BODY: TypeAdapter[Any] = TypeAdapter(
    Annotated[EchoBot | MenuBot | BookingBot | OrdersBot, Field(discriminator="kind")]
)


class BotRead(BaseModel):
    kind: str
    config: dict[str, Any] = Field(description="As validated: defaults filled in.")
