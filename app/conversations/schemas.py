from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.kit.types import JsonBool


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_paused: JsonBool = Field(
        description="true: a person takes the chat over and the bot stays quiet; false: the bot answers again "
        "from the customer's next message."
    )


class ConversationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    chat_jid: str = Field(description="The customer's WhatsApp chat.")
    alt_jid: str | None = Field(
        description="The customer's other WhatsApp identifier, once seen: the LID of a chat keyed by phone "
        "number, or the phone JID of a chat first seen under its LID. Both find the chat (`chat=`)."
    )
    customer_name: str | None
    bot_paused: bool = Field(description="Whether a person answers this chat instead of the bot.")
    bot_paused_at: datetime | None = Field(description="Since when the chat is with a person; null if not.")
    last_message_at: datetime | None


class LastMessage(BaseModel):
    text: str | None
    direction: str = Field(description="in | out")
    created_at: datetime


class ConversationSummaryRead(BaseModel):
    id: uuid.UUID
    chat: str = Field(
        description="The customer's number in E.164 where known (under either identifier), else its JID."
    )
    chat_jid: str = Field(description="The identifier the conversation was created under (its key).")
    alt_jid: str | None = Field(
        description="The customer's other WhatsApp identifier, once seen: the LID of a chat keyed by phone "
        "number, or the phone JID of a chat first seen under its LID. Both find the chat (`chat=`)."
    )
    customer_name: str | None
    last_message_at: datetime
    last_message: LastMessage | None
    unread_count: int = Field(
        description="The customer's messages after the store's last message in the chat (all of them if the "
        "store never wrote)."
    )
    bot_paused: bool
    bot_paused_at: datetime | None


class ConversationPage(BaseModel):
    items: list[ConversationSummaryRead]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last one.")
