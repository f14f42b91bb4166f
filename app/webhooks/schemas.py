from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.kit.types import JsonAwareDatetime, JsonBool
from app.webhooks.urls import URL_PATTERN

EventType = Literal[
    "message.received", "message.sent", "message.status", "store.status", "conversation.bot_paused"
]


def _unique(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


Events = Annotated[list[EventType], Field(min_length=1), AfterValidator(_unique)]
Url = Annotated[str, Field(min_length=8, max_length=2000, pattern=URL_PATTERN)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(description="http or https; not a loopback, private, link-local or metadata address.")
    events: Events = Field(description="The events to receive.")
    description: str | None = Field(None, max_length=500)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Events | None = None
    description: str | None = Field(None, max_length=500)
    enabled: JsonBool | None = Field(
        None, description="false pauses deliveries (pending ones are given up); true enables it again."
    )


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    store_id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    failing_since: datetime | None = Field(
        description="Failing without a success since then (null: healthy)."
    )
    disabled_at: datetime | None
    disabled_reason: str | None = Field(
        description="Why the webhook turned itself off (it failed for its whole retry window); the page shows it."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, the old secret also signs until then."
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="`whsec_...`: shown this once; verify signatures with it.")


class SecretRotated(BaseModel):
    secret: str = Field(description="The new `whsec_...` secret, shown this once.")
    previous_secret_expires_at: datetime = Field(description="The old secret signs too until then.")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event: str
    message_id: str = Field(description="The `webhook-id` header: the same for every attempt and replay.")
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    response_status: int | None = Field(description="The last attempt's HTTP status code.")
    latency_ms: int | None = Field(description="The last attempt's duration.")
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    created_at: datetime
    delivered_at: datetime | None = Field(description="When it succeeded or was given up.")
    payload: dict[str, Any]

    @model_validator(mode="after")
    def _next_only_when_pending(self) -> DeliveryRead:
        if self.status != "pending":
            self.next_attempt_at = None
        return self


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: JsonAwareDatetime
    until: JsonAwareDatetime
    events: Events | None = Field(None, description="Only these events (default: the webhook's own).")

    @model_validator(mode="after")
    def _ordered(self) -> ReplayRequest:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class ReplayResult(BaseModel):
    deliveries: int = Field(description="Deliveries queued, in the order the events happened.")
