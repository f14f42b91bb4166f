"""The bots' configuration models: pure pydantic, validated when the API writes a store's bot.

They live in app/ (not next to the bots in workers/bots/) because the API validates them and must not import
workers/; the bots import them from here. Every model forbids unknown fields, so a typo is an error with the
field's path instead of a setting silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    JsonValue,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.kit.nul import NOT_BLANK
from app.kit.types import JsonBool, JsonInt
from app.webhooks.urls import URL_PATTERN

Language = Literal["es", "en"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "America/Argentina/Buenos_Aires"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), NOT_BLANK]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK]
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_HHMM = re.compile(HHMM_PATTERN)


def _hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError("expected a time of day as HH:MM (00:00 to 23:59)")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("expected an IANA time zone name, like America/Argentina/Buenos_Aires") from exc
    return value


# The names ZoneInfo knows here, listed in the document (when the system has a time zone database at all).
_ZONE_NAMES: list[JsonValue] = [*sorted(available_timezones())]
_TIMEZONES = Field(json_schema_extra={"enum": _ZONE_NAMES} if _ZONE_NAMES else None)
HourMinute = Annotated[str, AfterValidator(_hhmm), Field(json_schema_extra={"pattern": HHMM_PATTERN})]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Localized(_Config):
    language: Language = Field("es", description="The language the bot answers in: es (default) or en.")


# --- echo ---------------------------------------------------------------------------------------------------
class EchoConfig(_Config):
    """Nothing to configure: the bot answers with the customer's own text."""


# --- menu ---------------------------------------------------------------------------------------------------
class MenuOption(_Config):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": "An option needs an answer, a submenu (options) or handoff.",
            "anyOf": [
                {"required": ["answer"], "properties": {"answer": {"type": "string"}}},
                {"required": ["options"], "properties": {"options": {"minItems": 1}}},
                {"required": ["handoff"], "properties": {"handoff": {"const": True}}},
            ],
        },
    )
    title: Name = Field(description="Shown in the numbered list.")
    keywords: list[Name] = Field(default_factory=list, description="Words that choose it besides its number.")
    answer: Text | None = Field(None, description="Sent when the option is chosen.")
    options: list[MenuOption] = Field(default_factory=list, max_length=30, description="A submenu.")
    handoff: JsonBool = Field(False, description="Hand the chat to a person (the bot pauses for this chat).")

    @model_validator(mode="after")
    def _leads_somewhere(self) -> MenuOption:
        if self.answer is None and not self.options and not self.handoff:
            raise ValueError("an option needs an answer, a submenu (options) or handoff")
        return self


class MenuConfig(_Localized):
    greeting: Text = Field(
        description="Sent once, before the menu, to a customer who writes for the first time."
    )
    options: list[MenuOption] = Field(min_length=1, max_length=30)
    handoff_message: Text | None = Field(None, description="Answer to 'humano'/'agent'; a default otherwise.")


# --- booking ------------------------------------------------------------------------------------------------
class BookableService(_Config):
    name: Name
    duration_minutes: JsonInt = Field(ge=5, le=12 * 60)


class OpeningRange(_Config):
    """Accepted as a pair too: ["09:00", "13:00"]."""

    start: HourMinute
    end: HourMinute

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The pair form, documented too; that end comes after start no schema can say (the description does).
        pair = {
            "type": "array",
            "items": {"type": "string", "pattern": HHMM_PATTERN},
            "minItems": 2,
            "maxItems": 2,
        }
        return {
            "anyOf": [handler(schema), pair],
            "description": "From start to end (after start), the same day.",
        }

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"start": value[0], "end": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> OpeningRange:
        if self.end <= self.start:  # zero-padded HH:MM strings compare like times
            raise ValueError("end must be after start (a range cannot cross midnight)")
        return self


class BookingConfig(_Localized):
    services: list[BookableService] = Field(min_length=1, max_length=30)
    opening_hours: dict[Weekday, list[OpeningRange]] = Field(
        description='Per weekday, e.g. {"mon": [["09:00", "13:00"], ["16:00", "20:00"]]}; missing days are closed.'
    )
    slot_minutes: JsonInt = Field(30, ge=5, le=12 * 60, description="Bookings start every this many minutes.")
    timezone: Annotated[str, AfterValidator(_timezone), _TIMEZONES] = DEFAULT_TIMEZONE
    days_ahead: JsonInt = Field(7, ge=1, le=60, description="How many open days to offer.")
    greeting: Text | None = None

    @model_validator(mode="after")
    def _unique_services(self) -> BookingConfig:
        names = [service.name.casefold() for service in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        return self


# --- orders -------------------------------------------------------------------------------------------------
class CatalogItem(_Config):
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), NOT_BLANK]
    name: Name
    price_cents: JsonInt = Field(ge=0)
    category: Name | None = None


class OrdersConfig(_Localized):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": "Delivery, pickup or both (not neither); catalog ids unique, case aside.",
            # Each alternative holds when its field is absent (default true) or true.
            "anyOf": [
                {"properties": {"delivery_enabled": {"const": True}}},
                {"properties": {"pickup_enabled": {"const": True}}},
            ],
        },
    )
    catalog: list[CatalogItem] = Field(min_length=1, max_length=200)
    currency: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5), NOT_BLANK
    ] = "$"
    delivery_enabled: JsonBool = True
    delivery_fee_cents: JsonInt = Field(0, ge=0)
    pickup_enabled: JsonBool = True
    greeting: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OrdersConfig:
        ids = [item.id.casefold() for item in self.catalog]
        if len(set(ids)) != len(ids):
            raise ValueError("catalog item ids must be unique")
        if not (self.delivery_enabled or self.pickup_enabled):
            raise ValueError("enable delivery, pickup or both")
        return self


# --- webhook ------------------------------------------------------------------------------------------------
class WebhookBotSettings(_Config):
    """The store's own backend answers: a signed (Standard Webhooks) POST per inbound message, answered with
    `{"replies": [{"text": ...}], "state": {...}?, "handoff": false?}`. What a client sends."""

    # The pattern is the webhooks' (`app/webhooks/urls.py`); blanks around the URL are refused, not stripped, so
    # that the document's pattern is the whole rule.
    url: str = Field(
        min_length=8,
        max_length=2000,
        pattern=URL_PATTERN,
        description="http or https; not a loopback, private, link-local or metadata address.",
    )
    timeout_ms: JsonInt = Field(5000, ge=100, le=30000, description="How long to wait for the answer.")


class WebhookBotConfig(WebhookBotSettings):
    # Written by the API (the signing secret, encrypted like webhook secrets); never accepted from clients.
    secret_encrypted: str | None = None


CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "echo": EchoConfig,
    "menu": MenuConfig,
    "booking": BookingConfig,
    "orders": OrdersConfig,
    "webhook": WebhookBotConfig,
}
