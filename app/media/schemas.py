from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AnyUrl, BaseModel, BeforeValidator, ConfigDict, Field, UrlConstraints, model_validator

from app.kit.types import json_integer
from app.media.limits import MediaType

HttpUrl = Annotated[AnyUrl, UrlConstraints(max_length=2048, allowed_schemes=["http", "https"])]


class UploadRead(BaseModel):
    id: uuid.UUID = Field(description='Send it as `"media": {"upload_id": ...}`.')
    type: MediaType
    mime: str
    size: int
    sha256: str
    file_name: str | None
    expires_at: datetime = Field(description="The upload can be sent until then; then it is deleted.")


class SendMedia(BaseModel):
    """The `media` of a send: exactly one of `url` and `upload_id`."""

    # `_one_source` declared.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["url"],
                    "properties": {"url": {"type": "string"}, "upload_id": {"type": "null"}},
                },
                {
                    "required": ["upload_id"],
                    "properties": {"upload_id": {"type": "string"}, "url": {"type": "null"}},
                },
            ]
        },
    )

    url: HttpUrl | None = Field(
        None, description="Fetched once, now (http/https, public addresses, WhatsApp's size limits)."
    )
    upload_id: uuid.UUID | None = Field(None, description="An upload of `POST /v1/uploads`.")
    type: MediaType | None = Field(
        None,
        description="Sent as this type (default: from the MIME type; `document` sends any accepted file "
        "uncompressed).",
    )
    file_name: str | None = Field(None, max_length=255, description="Shown with a document.")

    @model_validator(mode="after")
    def _one_source(self) -> SendMedia:
        if (self.url is None) == (self.upload_id is None):
            raise ValueError("give exactly one of `url` and `upload_id`")
        return self


class MediaSettings(BaseModel):
    retention_days: int | None = Field(
        description="Media older than this many days is deleted (the message keeps its metadata and says "
        "`expired`); null keeps media forever."
    )


class MediaSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The bounds inside (pydantic documents bounds beside a before-validator under a union as `ge`/`le`, which
    # JSON Schema ignores).
    retention_days: Annotated[Annotated[int, Field(ge=1, le=36500)], BeforeValidator(json_integer)] | None
