from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.contracts import phone_to_jid
from app.stores.schemas import PhoneNumber, normalize_phone


def normalize_chat(value: str) -> str:
    """A chat given as a JID is kept; a phone number becomes its JID."""
    value = value.strip()
    return value if "@" in value else phone_to_jid(normalize_phone(value))


ChatJid = Annotated[str, AfterValidator(normalize_chat)]


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
    lid: str | None = Field(
        None,
        pattern=r"^[0-9]{6,20}$",
        description="The customer's LID (digits): WhatsApp addresses the chat by `<lid>@lid` and gives the "
        "number in `from` beside it, as it does for many chats now.",
    )
    hide_phone: bool = Field(
        False, description="With `lid`: the network does not reveal the number (only the LID arrives)."
    )


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
