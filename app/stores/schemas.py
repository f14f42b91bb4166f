from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    computed_field,
)

from app.contracts import StatusReasonCode, status_reason_code
from app.kit.nul import NOT_BLANK
from app.models import DesiredState, StoreStatus
from app.stores.settings import StoreSettingsUpdate

# Optional +, 8 to 15 digits, spaces and dashes allowed. The OpenAPI document's pattern and the check are this
# one regex, searched the same way (Python's `re`, like JSON Schema validators), so that the document accepts
# exactly what the API accepts.
PHONE_PATTERN = r"^ *\+?[0-9](?:[ -]*[0-9]){7,14}[ -]*$"
_PHONE = re.compile(PHONE_PATTERN)


def normalize_phone(value: str) -> str:
    """`+54 9 11 5555-0000` -> `+5491155550000`."""
    if not _PHONE.search(value):
        raise ValueError(
            "expected a phone number in international format, like +5491155550000 "
            "(optional +, 8 to 15 digits, spaces and dashes allowed)"
        )
    return "+" + re.sub(r"[^0-9]", "", value)


PhoneNumber = Annotated[
    str,
    AfterValidator(normalize_phone),
    WithJsonSchema({"type": "string", "pattern": PHONE_PATTERN, "examples": ["+5491155550000"]}),
]
StoreName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK]


class StoreCreate(BaseModel):
    name: StoreName = Field(description="What the tenant calls this store (1-200 characters).")


class StoreRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    status: StoreStatus = Field(description="What the session manager last observed.")
    status_reason: str | None = Field(description="Why the store is in this status (errors, logouts).")

    @computed_field(  # type: ignore[prop-decorator]
        description="Why the store is down, as a code to branch on (the reason's text is for people): "
        "`qr_expired`, `banned`, `logged_out`, `connection_error`; null when it is not down."
    )
    @property
    def status_reason_code(self) -> StatusReasonCode | None:
        return status_reason_code(self.status.value, self.status_reason)

    desired_state: DesiredState = Field(description="What was asked for: link, log out, or nothing.")
    phone_number: str | None = Field(description="The linked WhatsApp number, once connected.")
    settings: dict[str, Any] = Field(
        description="The store's settings, by group (see `PATCH /v1/stores/{id}`)."
    )
    created_at: datetime
    updated_at: datetime


class StoreUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: StoreSettingsUpdate = Field(description="The settings groups to replace.")


class StorePage(BaseModel):
    items: list[StoreRead]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last one.")


class QrFormat(StrEnum):
    json = "json"
    svg = "svg"
    png = "png"


class QrCodeRead(BaseModel):
    code: str = Field(description="The text to encode in the QR code the phone scans.")
    expires_at: datetime


class PairingCodeRequest(BaseModel):
    phone: PhoneNumber = Field(description="The store's WhatsApp number, in international format.")


class PairingCodeRead(BaseModel):
    code: str = Field(description="Type it on the phone: WhatsApp > Linked devices > Link with phone number.")
    expires_at: datetime
