from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class EventKind:
    message_created = "message.created"
    message_status = "message.status"
    store_status = "store.status"
    conversation_bot_paused = "conversation.bot_paused"


class Event(Base):
    """A store's change log: one row per message created, per message status change, per store status change
    and per chat paused or resumed. Written by triggers (migration 0009) in the very transaction of the change,
    so no writer can forget one and none is recorded for a change that rolled back. The changes feed and the
    webhooks read it; a message's status history is its rows here.

    Rows go with their store (a trigger on `stores` deletes them).

    `xid` is the writing transaction's id: rows are read in (xid, id) order and only below the oldest
    transaction still running (`app/events/repository.py`), so a reader that resumes after the last row it
    saw never misses a row of a transaction that committed later, nor sees one twice.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_store_xid", "store_id", "xid", "id"),
        Index("ix_events_message", "message_id", "id", postgresql_where=text("message_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    # No foreign keys: each would cost a lookup per row on the hottest writes (measured: bench/events.py).
    # A deleted store's rows are deleted by a trigger on `stores`; messages and conversations are deleted only
    # with their store.
    store_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[uuid.UUID | None]
    conversation_id: Mapped[uuid.UUID | None]
    # message.*: the message's status; store.status: the store's; conversation.bot_paused: paused | resumed.
    status: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)  # a failed send's error, a store's status reason
    xid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id()::text)::bigint"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))
