from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.messages.schemas import MessageRead

ChangeKind = Literal["message.created", "message.status", "store.status", "conversation.bot_paused"]
MESSAGE_KINDS: tuple[ChangeKind, ...] = ("message.created", "message.status")


class StoreChange(BaseModel):
    id: uuid.UUID
    status: str = Field(description="The store's status this change set (connected, disconnected, ...).")
    reason: str | None = Field(description="Why, when the session manager said (an error, a logout ...).")


class ConversationChange(BaseModel):
    id: uuid.UUID
    bot_paused: bool = Field(description="true: a person took the chat over; false: the bot answers again.")


class ChangeRead(BaseModel):
    cursor: str = Field(description="This change's position: pass it as `?after=` to read what follows it.")
    kind: ChangeKind
    at: datetime = Field(description="When the change was written (inside its transaction).")
    status: str | None = Field(
        description="The status this change set: the message's (`message.*`), the store's (`store.status`), "
        "`paused` or `resumed` (`conversation.bot_paused`)."
    )
    error: str | None = Field(description="A failed send's error; a store's status reason.")
    message: MessageRead | None = Field(
        description="`message.*` kinds: the message as it is now (its `status` may be past this change's)."
    )
    store: StoreChange | None = Field(description="`store.status` only.")
    conversation: ConversationChange | None = Field(description="`conversation.bot_paused` only.")


class ChangePage(BaseModel):
    items: list[ChangeRead]
    next_cursor: str = Field(
        description="Where to resume: pass it as `?after=` next time. Never null: an empty page returns the "
        "position it reached, so a reader that stores it and polls never misses or repeats a change."
    )
