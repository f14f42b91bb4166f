from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class MessageView(BaseModel):
    direction: str
    text: str | None
    status: str
    created_at: datetime


class ConversationView(BaseModel):
    id: uuid.UUID
    chat_jid: str
    customer_name: str | None
    bot_paused: bool
    last_message_at: datetime | None
    messages: list[MessageView]


class ConversationList(BaseModel):
    items: list[ConversationView]
