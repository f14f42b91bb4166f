"""The bot interface: given the store's config, the conversation's state and the inbound message, return the
replies and the new state.

A bot does no I/O of its own. What it may touch beyond its arguments comes through `BotTools`, which the
worker backs with the same database transaction that records the bot's effects (inbound handled, new state,
reply rows): a redelivered message is skipped as a whole, and a crash in the middle leaves nothing behind.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

Language = Literal["es", "en"]


@dataclass(frozen=True)
class BotMessage:
    """The customer's message as the bot sees it."""

    text: str  # "" for media without a caption
    type: str  # text | image | audio | ...
    chat_jid: str
    customer_name: str | None
    received_at: datetime
    id: uuid.UUID | None = None  # the inbound message's row (the webhook bot's `webhook-id` derives from it)


@dataclass(frozen=True)
class BotContext:
    store_id: uuid.UUID
    store_name: str
    language: Language
    now: datetime  # the worker's clock, timezone-aware; bots never read the clock themselves


@dataclass
class BotReply:
    replies: list[str]
    state: dict[str, Any]
    # The conversation asks for a person: the worker pauses the bot for this chat until a person resumes it.
    handoff: bool = False


@dataclass(frozen=True)
class Booking:
    id: uuid.UUID
    service: str
    starts_at: datetime
    customer_name: str


@dataclass(frozen=True)
class OrderLine:
    item: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Order:
    id: uuid.UUID
    lines: list[OrderLine] = field(default_factory=list)
    total_cents: int = 0
    fulfilment: Literal["delivery", "pickup"] = "pickup"
    address: str | None = None
    customer_name: str | None = None
    # The store's order number ("pedido #12"), given by `BotTools.place_order`; 0 until then.
    number: int = 0


class BotTools(ABC):
    """What a bot may read and write besides its own state; scoped to one store and one chat."""

    @abstractmethod
    async def taken_slots(self, service: str, day: date) -> list[datetime]:
        """Start times already booked for the service on that day."""

    @abstractmethod
    async def book(self, service: str, starts_at: datetime, customer_name: str) -> Booking | None:
        """Book the slot for this chat; None when someone else holds it (a database constraint decides)."""

    @abstractmethod
    async def bookings(self) -> list[Booking]:
        """This chat's upcoming bookings."""

    @abstractmethod
    async def cancel_booking(self, booking_id: uuid.UUID) -> bool: ...

    @abstractmethod
    async def place_order(self, order: Order) -> Order:
        """Record a confirmed order (listed by GET /v1/stores/{id}/orders); returned with its number."""


class Bot(ABC):
    kind: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    @abstractmethod
    async def handle(
        self,
        context: BotContext,
        config: BaseModel,
        state: dict[str, Any],
        message: BotMessage,
        tools: BotTools,
    ) -> BotReply:
        """Answer one message. Never silent: a message the bot does not understand gets a helpful answer."""
