from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, TimestampMixin


class Conversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("store_id", "chat_jid"),
        Index("ix_conversations_store_last_message", "store_id", "last_message_at", "id"),
        Index(
            "ix_conversations_store_alt_jid",
            "store_id",
            "alt_jid",
            postgresql_where=text("alt_jid IS NOT NULL"),
        ),
    )

    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    # The identifier the conversation was created under (a phone JID, or a LID when WhatsApp gave no number):
    # its key, and where replies go.
    chat_jid: Mapped[str] = mapped_column(String(100))
    # The customer's other identifier, once WhatsApp gave both (migration 0010): the LID of a chat keyed by
    # phone, or the phone JID of a chat keyed by LID. The inbound insert finds the conversation by either.
    alt_jid: Mapped[str | None] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    last_message_at: Mapped[datetime | None]
    bot_state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    bot_paused: Mapped[bool] = mapped_column(default=False)
    # When the bot last handed the chat to a person (or a person last answered in it): a store's
    # `handoff.auto_resume_minutes` resumes the bot that long after. Null while the bot answers.
    bot_paused_at: Mapped[datetime | None]


class Direction(StrEnum):
    inbound = "in"
    outbound = "out"


class MessageStatus(StrEnum):
    # inbound
    received = "received"  # durable, maybe not yet on the stream
    queued = "queued"  # on the store's stream
    handled = "handled"  # bot effects committed
    dead = "dead"  # moved to the dead-letter stream
    # outbound
    pending = "pending"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


class Message(IdMixin, TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A WhatsApp id is unique within a store: the inbound insert dedupes on it (ON CONFLICT DO NOTHING).
        UniqueConstraint("store_id", "wa_id"),
        # Keyset pagination of a store's and a conversation's history, newest first or oldest first.
        Index("ix_messages_store_created", "store_id", "created_at", "id"),
        Index("ix_messages_conversation_created", "conversation_id", "created_at", "id"),
        # Rows still in flight, by status then chat: the hot queries (a chat's oldest pending reply, its waiting
        # inbound messages) read only the chat's rows in that status; the sweepers only that status's rows.
        Index(
            "ix_messages_in_flight",
            "status",
            "conversation_id",
            "seq",
            postgresql_where=text("status IN ('received', 'queued', 'pending', 'sending')"),
        ),
        # Full-text search of the history, Spanish stemming, accents ignored (migration 0007 creates the function
        # and explains why it is needed); partial: only rows with a text. Spelled as SEARCH_VECTOR below.
        Index(
            "ix_messages_text_search",
            text("to_tsvector('spanish'::regconfig, mostrador_unaccent(text))"),
            postgresql_using="gin",
            postgresql_where=text("text IS NOT NULL"),
        ),
        # Media still to download, per store (the session manager's download sweep, migration 0012), and media
        # kept, by age (the worker's retention job). `media.state` is described in docs/contracts.md.
        Index(
            "ix_messages_media_pending",
            "store_id",
            postgresql_where=text("(media ->> 'state') = 'pending'"),
        ),
        Index(
            "ix_messages_media_kept",
            "created_at",
            postgresql_where=text("(media ->> 'state') IN ('pending', 'stored', 'failed')"),
        ),
    )

    # Insertion order inside the database: orders a chat's messages (the oldest waiting first). Never exposed.
    # Unique by construction (an identity); no unique index, which every one of a row's versions would pay for.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))
    wa_id: Mapped[str | None] = mapped_column(String(128))  # null for an outbound row not sent yet
    sender_jid: Mapped[str | None] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20), default="text")
    text: Mapped[str | None] = mapped_column(Text)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When WhatsApp says the message was sent (inbound: the customer's phone; outbound: our send).
    wa_timestamp: Mapped[datetime | None]
    # For an outbound reply: the inbound message it answers.
    reply_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))


# The history's search queries use this very expression (the index's), or the planner does not pick the index.
SEARCH_VECTOR: ColumnElement[Any] = func.to_tsvector(
    literal_column("'spanish'::regconfig"), func.mostrador_unaccent(Message.text)
)
