"""Every query of the worker. A system process: it works by store id, across tenants."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, String, Uuid, and_, case, column, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Direction, Message, MessageStatus, Store


@dataclass(frozen=True)
class InboundRow:
    id: uuid.UUID
    store_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    status: str
    type: str
    text: str | None
    wa_timestamp: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ConversationRow:
    id: uuid.UUID
    chat_jid: str
    customer_name: str | None
    bot_state: dict[str, Any]
    bot_paused: bool
    bot_paused_at: datetime | None


@dataclass(frozen=True)
class StoreRow:
    id: uuid.UUID
    name: str
    bot_kind: str
    bot_config: dict[str, Any]
    settings: dict[str, Any]


@dataclass(frozen=True)
class ConversationSave:
    id: uuid.UUID
    state: dict[str, Any]
    paused: bool
    paused_at: datetime | None


UNHANDLED_INBOUND = text("""
SELECT m.id, m.store_id, m.conversation_id, m.seq, m.status, m.type, m.text, m.wa_timestamp, m.created_at
FROM messages m
JOIN unnest(CAST(:ids AS uuid[]), CAST(:seqs AS bigint[])) AS u(id, seq) ON m.conversation_id = u.id
WHERE m.status IN ('received', 'queued') AND m.direction = 'in' AND m.seq <= u.seq
ORDER BY m.seq
FOR UPDATE OF m
""")

# The conversations of a handler's batch, locked in (store, chat) order (the inbound insert's order too, so the
# two never deadlock), each with its store's bot. NO KEY UPDATE: handlers of one chat still take turns, but the
# foreign-key checks of messages being inserted into the chat (KEY SHARE) need not wait for the handler's commit.
LOCK_CONVERSATIONS = text("""
SELECT c.id, c.chat_jid, c.customer_name, c.bot_state, c.bot_paused, c.bot_paused_at,
       s.id, s.name, s.bot_kind, s.bot_config, s.settings
FROM conversations c JOIN stores s ON s.id = c.store_id
WHERE c.id = ANY(CAST(:ids AS uuid[]))
ORDER BY c.store_id, c.chat_jid
FOR NO KEY UPDATE OF c
""").columns(
    column("id", Uuid), column("chat_jid", String), column("customer_name", String), column("bot_state", JSONB),
    column("bot_paused", Boolean), column("bot_paused_at", DateTime(timezone=True)), column("store_id", Uuid),
    column("name", String), column("bot_kind", String), column("bot_config", JSONB), column("settings", JSONB),
)  # fmt: skip

# Everything a handler's batch changes, in one statement (one round trip, one run of the change log's triggers
# per table): the replies `pending` (their `seq` in list order), the handled messages, the chats' bot state.
WRITE_EFFECTS = text("""
WITH replies AS (
    INSERT INTO messages (id, store_id, conversation_id, direction, type, text, status, attempts, reply_to_id)
    SELECT r.id, r.store_id, r.conversation_id, 'out', 'text', r.text, 'pending', 0, r.reply_to
    FROM unnest(
        CAST(:reply_ids AS uuid[]), CAST(:reply_store_ids AS uuid[]), CAST(:reply_conversation_ids AS uuid[]),
        CAST(:reply_to AS uuid[]), CAST(:reply_texts AS text[])
    ) WITH ORDINALITY AS r(id, store_id, conversation_id, reply_to, text, ord)
    ORDER BY r.ord
), handled AS (
    UPDATE messages SET status = 'handled', error = NULL, updated_at = now()
    WHERE id = ANY(CAST(:handled AS uuid[]))
), saved AS (
    UPDATE conversations c
    SET bot_state = CAST(u.state AS jsonb), bot_paused = u.paused, bot_paused_at = u.paused_at,
        updated_at = now()
    FROM unnest(
        CAST(:conversation_ids AS uuid[]), CAST(:states AS text[]), CAST(:paused AS boolean[]),
        CAST(:paused_at AS timestamptz[])
    ) AS u(id, state, paused, paused_at)
    WHERE c.id = u.id
)
SELECT 1  -- each part above runs once, to completion, whether read or not (PostgreSQL's rule for WITH)
""")


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store_ids(self) -> list[uuid.UUID]:
        return list((await self.session.execute(select(Store.id))).scalars())

    async def inbound(self, message_ids: list[uuid.UUID]) -> list[InboundRow]:
        """The inbound rows, not locked: the conversation is locked first (see `unhandled_inbound`)."""
        query = (
            select(
                Message.id, Message.store_id, Message.conversation_id, Message.seq, Message.status, Message.type,
                Message.text, Message.wa_timestamp, Message.created_at,
            )
            .where(Message.id.in_(message_ids), Message.direction == Direction.inbound)
            .order_by(Message.seq)
        )  # fmt: skip
        return [InboundRow(*row) for row in (await self.session.execute(query)).all()]

    async def unhandled_inbound(self, up_to: dict[uuid.UUID, int]) -> list[InboundRow]:
        """For each conversation id -> seq: the chat's messages still waiting up to that seq, oldest first,
        locked. Called with the conversations locked, so concurrent handlers of one chat (a takeover race) take
        turns."""
        ids = list(up_to)
        rows = await self.session.execute(UNHANDLED_INBOUND, {"ids": ids, "seqs": [up_to[i] for i in ids]})
        return [InboundRow(*row) for row in rows]

    async def lock_conversations(self, ids: list[uuid.UUID]) -> list[tuple[ConversationRow, StoreRow]]:
        """The conversations, locked in (store, chat) order, each with its store's bot."""
        rows = await self.session.execute(LOCK_CONVERSATIONS, {"ids": ids})
        return [(ConversationRow(*row[:6]), StoreRow(*row[6:])) for row in rows]

    async def write_effects(
        self,
        replies: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]],
        handled: list[uuid.UUID],
        saves: list[ConversationSave],
    ) -> list[uuid.UUID]:
        """In one statement: insert (store, conversation, reply_to, text) replies `pending` in list order (their
        `seq` follows it), mark the `handled` inbound messages, save the conversations' bot state. Returns the
        replies' ids."""
        ids = [uuid.uuid4() for _ in replies]
        await self.session.execute(
            WRITE_EFFECTS,
            {
                "reply_ids": ids,
                "reply_store_ids": [r[0] for r in replies],
                "reply_conversation_ids": [r[1] for r in replies],
                "reply_to": [r[2] for r in replies],
                "reply_texts": [r[3] for r in replies],
                "handled": handled,
                "conversation_ids": [c.id for c in saves],
                "states": [json.dumps(c.state) for c in saves],
                "paused": [c.paused for c in saves],
                "paused_at": [c.paused_at for c in saves],
            },
        )
        return ids

    async def mark_dead(self, message_id: uuid.UUID, error: str) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status != MessageStatus.handled)
            .values(status=MessageStatus.dead.value, error=error[:2000], attempts=Message.attempts + 1)
        )

    async def requeue(self, message_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=MessageStatus.queued.value, error=None)
        )

    # --- the relay (workers/relay.py) ------------------------------------------------------------------------
    async def unqueued_inbound(
        self,
        store_ids: list[uuid.UUID],
        received_before: datetime,
        queued_before: datetime,
        limit: int = 1000,
    ) -> list[tuple[uuid.UUID, uuid.UUID, str, str]]:
        """Inbound rows whose stream entry may be missing, oldest first: `received` (committed, never queued: a
        crash or a Redis outage between the two), or `queued` long ago and still not handled (the entry lost
        with a Redis)."""
        query = (
            select(Message.id, Message.store_id, Conversation.chat_jid, Message.wa_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.store_id.in_(store_ids),
                Message.direction == Direction.inbound,
                or_(
                    and_(Message.status == MessageStatus.received, Message.created_at < received_before),
                    and_(Message.status == MessageStatus.queued, Message.updated_at < queued_before),
                ),
            )
            .order_by(Message.seq)
            .limit(limit)
        )
        return [(r[0], r[1], r[2], r[3] or "") for r in (await self.session.execute(query)).all()]

    async def unsent_outbound(
        self, store_ids: list[uuid.UUID], older_than: datetime, limit: int = 1000
    ) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        """Replies still `pending` long after they were written: their outbox entries may be gone."""
        query = (
            select(Message.id, Message.store_id, Conversation.chat_jid)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.store_id.in_(store_ids),
                Message.status == MessageStatus.pending,
                Message.updated_at < older_than,
            )
            .order_by(Message.seq)
            .limit(limit)
        )
        return [(r[0], r[1], r[2]) for r in (await self.session.execute(query)).all()]

    async def relayed(self, ids: list[uuid.UUID]) -> None:
        """Rows just put on their streams: inbound ones are `queued` now, and every one's clock restarts."""
        if ids:
            await self.session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(
                    status=case(
                        (Message.status == MessageStatus.received, MessageStatus.queued.value),
                        else_=Message.status,
                    ),
                    updated_at=func.now(),
                )
            )
