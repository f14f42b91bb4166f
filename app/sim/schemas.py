from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from app.contracts import phone_to_jid
from app.kit.types import JsonBool
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


# What `base64.b64decode(..., validate=True)` takes: the standard alphabet, padded to a multiple of 4.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class SimInboundMedia(BaseModel):
    type: Literal["image", "video", "audio", "document", "sticker"]
    mime: str = Field(min_length=3, max_length=150, pattern=r"^[\w.+-]+/[\w.+-]+(;.*)?$")
    data_base64: str = Field(
        pattern=BASE64_PATTERN,
        min_length=4,
        max_length=23_000_000,
        description="The file (at most 16 MB), base64-encoded.",
    )
    caption: str | None = Field(None, max_length=1024)
    file_name: str | None = Field(None, max_length=255)
    voice_note: JsonBool = Field(False, description="An audio recorded in the chat (WhatsApp's PTT).")


class InboundRequest(BaseModel):
    # `_text_or_media` declared: a `text` or a `media` (or both: the text is then ignored).
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["media"], "properties": {"media": {"type": "object"}}},
            ]
        },
    )

    from_: PhoneNumber = Field(alias="from", description="The customer's phone number.")
    text: str | None = Field(None, min_length=1, max_length=4096, description="Required without `media`.")
    media: SimInboundMedia | None = Field(
        None, description="The customer sends a file (with `text` ignored)."
    )
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
    hide_phone: JsonBool = Field(
        False, description="With `lid`: the network does not reveal the number (only the LID arrives)."
    )
    from_me: JsonBool = Field(
        False,
        description="The store's owner writes this to the customer from the phone itself (`from` is then the "
        "customer written to); the session manager records it as the store's message and pauses the bot.",
    )

    @model_validator(mode="after")
    def _text_or_media(self) -> InboundRequest:
        if self.text is None and self.media is None:
            raise ValueError("give `text` or `media`")
        return self


class InboundAccepted(BaseModel):
    id: str = Field(description="The message's WhatsApp id.")


class SimOutboundMedia(BaseModel):
    mime: str
    caption: str | None
    file_name: str | None
    size: int
    sha256: str
    url: str = Field(description="Where the test reads the bytes the store sent (the simulator's own route).")


class OutboundMessage(BaseModel):
    id: str = Field(description="The message's WhatsApp id.")
    chat: str = Field(description="The chat JID it was sent to.")
    type: str = "text"
    text: str
    timestamp: datetime
    media: SimOutboundMedia | None = None


class OutboundPage(BaseModel):
    items: list[OutboundMessage]


FaultKind = Literal["disconnect", "logout", "send_failure", "ban", "download_failure"]


class FaultRequest(BaseModel):
    kind: FaultKind = Field(
        description="`disconnect`: drop the connection (it reconnects); `logout`: log the device out from the "
        "phone; `send_failure`: fail the next send; `ban`: WhatsApp bans the number for a while (the store ends in "
        "`error`, reason code `banned`); `download_failure`: fail the next media download."
    )


class FaultAccepted(BaseModel):
    kind: FaultKind
