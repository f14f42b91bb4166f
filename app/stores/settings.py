"""A store's settings (`stores.settings`, JSON): validated here when the API writes them, read by the other
processes with `from_store_settings`, which falls back to the defaults on an old or broken value."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app.kit.types import json_integer


class HandoffSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The bounds inside the union and under the validator: else they reach the document as bare `ge`/`le`,
    # which JSON Schema ignores.
    auto_resume_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60), BeforeValidator(json_integer)] | None = (
        Field(
            None,
            description="After a handoff to a person, the bot answers the chat again once this many minutes went "
            "by without a human reply. Null (the default): the chat stays with the person until resumed by "
            "`PATCH /v1/stores/{store_id}/conversations/{conversation_id}`.",
        )
    )

    @classmethod
    def from_store_settings(cls, settings: dict[str, Any] | None) -> HandoffSettings:
        try:
            return cls.model_validate((settings or {}).get("handoff") or {})
        except ValidationError:
            return cls()


class StoreSettingsUpdate(BaseModel):
    """The settings groups to replace; a group left out keeps its current value."""

    model_config = ConfigDict(extra="forbid")

    handoff: HandoffSettings | None = Field(None, description="Handing chats to a person and back.")
