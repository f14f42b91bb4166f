from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from app.auth.scopes import KEY_SCOPES, Scope
from app.kit.nul import NOT_BLANK

KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK]


class ApiKeyCreate(BaseModel):
    name: KeyName = Field(description="What the key is for (1-200 characters).")
    scopes: Annotated[
        list[Scope] | None,
        # Checked by the service (a key never holds the scopes that manage keys or members, and only scopes
        # its maker holds, with an error naming them); the document lists the ones a key may hold.
        WithJsonSchema(
            {"anyOf": [{"type": "array", "items": {"enum": sorted(KEY_SCOPES)}}, {"type": "null"}]}
        ),
    ] = Field(None, description=f"Among {', '.join(sorted(KEY_SCOPES))}; default: all of them.")
    store_id: uuid.UUID | None = Field(None, description="Limit the key to this one store.")


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, `mst_<prefix>_`, to recognize it.")
    scopes: list[str]
    store_id: uuid.UUID | None = Field(description="The one store the key may reach; null: every store.")
    last_used_at: datetime | None = Field(description="Last use, to the minute.")
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself. Shown this once: only a hash of it is kept.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]
