from __future__ import annotations

import hashlib
import json

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.kit.types import JsonBool
from app.media.schemas import SendMedia
from app.messages.chats import PHONE_SERVER

LID_SERVER = "lid"
# WhatsApp's own limit for a text message, and for a media message's caption.
TEXT_MAX = 4096
CAPTION_MAX = 1024
# What `to` may look like (the validator then checks the number itself with `phonenumbers`): a number in
# international form (optional `+`, spaces, dots, dashes, parentheses as people write them), or a chat JID
# `<digits>@s.whatsapp.net` / `<digits>@lid`.
TO_PATTERN = r"^(\+?[0-9][0-9 ().-]{5,30}|[0-9]{5,20}@(s\.whatsapp\.net|lid))$"
# Printable ASCII without spaces, as Stripe and the IETF draft use them (a UUID is the usual choice).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


def normalize_to(value: str) -> str:
    """A phone number (or a phone JID) -> E.164 (`+5491166660000`); a LID JID stays as it is."""
    value = value.strip()
    user, _, server = value.partition("@")
    if server == LID_SERVER:
        if not user.isdigit():
            raise ValueError("a LID JID is digits followed by @lid")
        return value
    if server and server != PHONE_SERVER:
        raise ValueError(
            "only chats with a person can be written to: a number, <digits>@s.whatsapp.net or <digits>@lid"
        )
    digits = "".join(ch for ch in user if ch.isdigit())
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            "not a valid phone number: give it in international form with its country code, like +5491166660000"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def chat_jid_for(to: str) -> str:
    """The chat JID of a normalised `to`."""
    return to if "@" in to else to.removeprefix("+") + "@" + PHONE_SERVER


class SendMessage(BaseModel):
    """A text, or a file (image, video, audio, document) with an optional caption, to one customer. The request
    hash of an `Idempotency-Key` covers every field, `media` too."""

    # `_text_or_media` declared: a text (without media or caption), or media (with an optional caption).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string"},
                        "media": {"type": "null"},
                        "caption": {"type": "null"},
                    },
                },
                {
                    "required": ["media"],
                    "properties": {"media": {"type": "object"}, "text": {"type": "null"}},
                },
            ]
        },
    )

    to: str = Field(
        pattern=TO_PATTERN,
        description="The customer: a phone number in international form with its country code (`+5491166660000`; "
        "spaces and dashes allowed; answered normalised to E.164, and it must be a valid number), or a chat JID "
        "(`5491166660000@s.whatsapp.net`, or `<digits>@lid` for a chat WhatsApp addresses by LID). Groups are "
        "not supported.",
        examples=["+5491166660000"],
    )
    text: str | None = Field(
        None,
        min_length=1,
        max_length=TEXT_MAX,
        # Declared, so the schema refuses what the API refuses; the validator below says it in words first.
        pattern=r"\S",
        description=f"The message, 1 to {TEXT_MAX} characters (WhatsApp's limit), not only blanks. Required "
        "unless `media` is given.",
    )
    media: SendMedia | None = Field(
        None,
        description="A file to send instead of a text: `url` (fetched now, http/https, public addresses only) or "
        "`upload_id` (from `POST /v1/uploads`), within WhatsApp's limits per type.",
    )
    caption: str | None = Field(
        None, min_length=1, max_length=CAPTION_MAX, description="Shown under the media (only with `media`)."
    )
    pause_bot: JsonBool = Field(
        True,
        description="A reply written by a person pauses the store's bot in this chat (`bot_paused`, resumable with "
        "`PATCH /v1/stores/{id}/conversations/{conversation_id}`, or automatically after the store's "
        "`handoff.auto_resume_minutes`). Send `false` for an automated notification (an order update, a "
        "reminder) that must leave the bot answering.",
    )

    _to = field_validator("to")(normalize_to)

    @field_validator("text", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        if isinstance(value, str) and value and not value.strip():
            raise ValueError("the text is only blanks")
        return value

    @model_validator(mode="after")
    def _text_or_media(self) -> SendMessage:
        if self.media is None and self.text is None:
            raise ValueError("give a `text`, or `media` (with an optional `caption`)")
        if self.media is not None and self.text is not None:
            raise ValueError("a media message has a `caption`, not a `text`")
        if self.media is None and self.caption is not None:
            raise ValueError("a `caption` goes with `media`")
        return self

    def fingerprint(self) -> str:
        """What an `Idempotency-Key` is bound to: the normalised request, so `+54 9 11 ...` and `+54911...` are
        one request."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
