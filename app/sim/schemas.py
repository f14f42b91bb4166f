from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from app.contracts import phone_to_jid
from app.stores.schemas import PHONE_PATTERN, PhoneNumber, normalize_phone

JID_PATTERN = r"^[0-9A-Za-z._:-]{1,80}@[a-z.]{1,40}$"
_JID = re.compile(JID_PATTERN)


def normalize_chat(value: str) -> str:
    """A chat given as a JID is kept; a phone number becomes its JID."""
    return value if _JID.search(value) else phone_to_jid(normalize_phone(value))


ChatJid = Annotated[
    str,
    AfterValidator(normalize_chat),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": p} for p in (PHONE_PATTERN, JID_PATTERN)]}),
]


class ScanRequest(BaseModel):
    phone: PhoneNumber | None = Field(
        None, description="The number of the phone that scans (default: a random +549115555xxxx)."
    )


class ScanAccepted(BaseModel):
    phone: str = Field(description="The number the store will be linked to.")


class InboundRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: PhoneNumber = Field(alias="from", description="The customer's phone number.")
    text: str = Field(min_length=1, max_length=4096)
    id: str | None = Field(
        None, min_length=1, max_length=128, description="WhatsApp message id (default: a new one)."
    )
    name: str | None = Field(None, max_length=200, description="The customer's WhatsApp display name.")


class InboundAccepted(BaseModel):
    id: str = Field(description="The message's WhatsApp id.")


class OutboundMessage(BaseModel):
    id: str = Field(description="The message's WhatsApp id.")
    chat: str = Field(description="The chat JID it was sent to.")
    text: str
    timestamp: datetime


class OutboundPage(BaseModel):
    items: list[OutboundMessage]


FaultKind = Literal["disconnect", "logout", "send_failure"]


class FaultRequest(BaseModel):
    kind: FaultKind = Field(
        description="`disconnect`: drop the connection (it reconnects); `logout`: log the device out from the "
        "phone; `send_failure`: fail the next send."
    )


class FaultAccepted(BaseModel):
    kind: FaultKind
