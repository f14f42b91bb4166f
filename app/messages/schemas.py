from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from app.messages.chats import chat_name
from app.models import Message


class MediaRead(BaseModel):
    type: str = Field(description="image | video | audio | document | sticker ...: the message's type.")
    mime: str | None
    size: int | None = Field(
        description="Bytes: as WhatsApp announced them, the stored file's once available."
    )
    caption: str | None
    file_name: str | None
    status: str | None = Field(
        None,
        description="pending (being downloaded from WhatsApp) | available | failed | expired (deleted by the "
        "tenant's retention); null for content without a file (a location, a contact).",
    )
    download_url: str | None = Field(
        description="`GET` it for the file (same credentials); null unless the media is available."
    )


class MessageRead(BaseModel):
    id: uuid.UUID
    store_id: uuid.UUID
    conversation_id: uuid.UUID
    chat: str = Field(
        description="The customer's number in E.164 where known (WhatsApp addressed the chat by phone, or "
        "gave the number beside its LID), else the chat's JID (a LID chat: `<id>@lid`)."
    )
    direction: str = Field(description="in | out")
    whatsapp_id: str | None = Field(description="WhatsApp's message id; null for a reply not sent yet.")
    sender: str | None = Field(description="The sender's JID.")
    type: str
    text: str | None
    media: MediaRead | None
    status: str
    created_at: datetime
    whatsapp_timestamp: datetime | None
    reply_to: uuid.UUID | None = Field(description="For a reply: the id of the inbound message it answers.")

    @classmethod
    def of(cls, message: Message, chat_jid: str) -> MessageRead:
        return cls(
            id=message.id,
            store_id=message.store_id,
            conversation_id=message.conversation_id,
            chat=chat_name(chat_jid),
            direction=message.direction,
            whatsapp_id=message.wa_id,
            sender=message.sender_jid,
            type=message.type,
            text=message.text,
            media=_media(message),
            status=message.status,
            created_at=message.created_at,
            whatsapp_timestamp=message.wa_timestamp,
            reply_to=message.reply_to_id,
        )


class StatusStep(BaseModel):
    status: str = Field(
        description="inbound: received | queued | handled | dead; outbound: pending | sending | sent | "
        "delivered | read | failed."
    )
    at: datetime = Field(description="When the message took this status (written in that transaction).")
    error: str | None = Field(description="Why, for a failed send (null otherwise).")


class MessageDetail(MessageRead):
    status_history: list[StatusStep] = Field(
        description="Every status the message has had, oldest first, from its creation (the change log)."
    )


_MEDIA_STATUS = {"pending": "pending", "stored": "available", "failed": "failed", "expired": "expired"}


def _media(message: Message) -> MediaRead | None:
    stored = message.media
    if not stored:
        return None
    size = stored.get("size")
    status = _MEDIA_STATUS.get(str(stored.get("state")))
    return MediaRead(
        type=message.type,
        mime=stored.get("mimetype"),
        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        caption=stored.get("caption"),
        file_name=stored.get("file_name"),
        status=status,
        download_url=f"/v1/stores/{message.store_id}/messages/{message.id}/media"
        if status == "available"
        else None,
    )


class MessagePage(BaseModel):
    items: list[MessageRead]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last one.")


class DayCount(BaseModel):
    day: date = Field(description="The UTC day.")
    inbound: int
    outbound: int


class ReplyTimes(BaseModel):
    replied: int = Field(description="Customer messages in the period that got a reply from the store.")
    median_seconds: float | None = Field(description="Null when nothing was replied to.")
    p95_seconds: float | None


class StoreStats(BaseModel):
    since: datetime
    until: datetime
    days: list[DayCount] = Field(description="Every UTC day with messages in the period, oldest first.")
    inbound: int
    outbound: int
    active_conversations: int = Field(description="Chats with at least one message in the period.")
    reply_time: ReplyTimes = Field(
        description="From a customer's message to the store's first reply to it (both as recorded by the "
        "server: the inbound's arrival, the reply's creation)."
    )
    failed_sends: int = Field(description="Outbound messages of the period whose sending failed for good.")
    dead_letters: int = Field(
        description="Entries in the store's dead-letter stream now (not only the period's)."
    )
