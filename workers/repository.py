"""Every query of the worker. A system process: it works by store id, across tenants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
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
    handled_seq: int
    bot_paused: bool


@dataclass(frozen=True)
class StoreRow:
    id: uuid.UUID
    name: str
    bot_kind: str
    bot_config: dict[str, Any]


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

    async def unhandled_inbound(self, conversation_id: uuid.UUID, up_to_seq: int) -> list[InboundRow]:
        """The chat's messages still waiting, up to `up_to_seq`, oldest first, locked. Called with the
        conversation locked, so concurrent handlers of one chat (a takeover race) take turns, never deadlock."""
        query = (
            select(
                Message.id, Message.store_id, Message.conversation_id, Message.seq, Message.status, Message.type,
                Message.text, Message.wa_timestamp, Message.created_at,
            )
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.inbound,
                Message.seq <= up_to_seq,
                Message.status.in_([MessageStatus.received, MessageStatus.queued]),
            )
            .order_by(Message.seq)
            .with_for_update()
        )  # fmt: skip
        return [InboundRow(*row) for row in (await self.session.execute(query)).all()]

    async def lock_conversation(self, conversation_id: uuid.UUID) -> tuple[ConversationRow, StoreRow]:
        """The conversation, locked, with its store's bot."""
        query = (
            select(
                Conversation.id, Conversation.chat_jid, Conversation.customer_name, Conversation.bot_state,
                Conversation.handled_seq, Conversation.bot_paused,
                Store.id, Store.name, Store.bot_kind, Store.bot_config,
            )
            .join(Store, Store.id == Conversation.store_id)
            .where(Conversation.id == conversation_id)
            .with_for_update(of=Conversation)
        )  # fmt: skip
        row = (await self.session.execute(query)).one()
        return ConversationRow(*row[:6]), StoreRow(*row[6:])

    async def add_replies(
        self, *, store_id: uuid.UUID, conversation_id: uuid.UUID, replies: list[tuple[uuid.UUID, str]]
    ) -> list[uuid.UUID]:
        """Insert (reply_to, text) rows `pending`, in list order (their `seq` follows it)."""
        if not replies:
            return []
        rows: list[dict[str, Any]] = [
            {
                "id": uuid.uuid4(), "store_id": store_id, "conversation_id": conversation_id,
                "direction": Direction.outbound.value, "type": "text", "text": text,
                "status": MessageStatus.pending.value, "attempts": 0, "reply_to_id": reply_to,
            }
            for reply_to, text in replies
        ]  # fmt: skip
        await self.session.execute(insert(Message), rows)
        return [row["id"] for row in rows]

    async def mark_handled(self, message_ids: list[uuid.UUID]) -> None:
        await self.session.execute(
            update(Message)
            .where(Message.id.in_(message_ids))
            .values(status=MessageStatus.handled.value, error=None)
        )

    async def save_conversation(
        self, conversation_id: uuid.UUID, *, state: dict[str, Any], handled_seq: int, paused: bool
    ) -> None:
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(
                bot_state=state,
                bot_paused=paused,
                handled_seq=func.greatest(Conversation.handled_seq, handled_seq),
            )
        )

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

    async def stale_inbound(
        self, store_ids: list[uuid.UUID], older_than: datetime, limit: int = 1000
    ) -> list[tuple[uuid.UUID, uuid.UUID, str, str]]:
        """Inbound rows queued long ago and still not handled: their stream entries may be gone."""
        query = (
            select(Message.id, Message.store_id, Conversation.chat_jid, Message.wa_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.store_id.in_(store_ids),
                Message.status == MessageStatus.queued,
                Message.updated_at < older_than,
            )
            .order_by(Message.seq)
            .limit(limit)
        )
        return [(r[0], r[1], r[2], r[3] or "") for r in (await self.session.execute(query)).all()]

    async def stale_outbound(
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

    async def touch(self, ids: list[uuid.UUID]) -> None:
        """Restart the sweep clock of rows just queued again."""
        if ids:
            await self.session.execute(
                update(Message).where(Message.id.in_(ids)).values(updated_at=func.now())
            )
