from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select, true, tuple_
from sqlalchemy.orm import aliased

from app.kit.pagination import Keyset
from app.kit.repository import TenantScopedRepository
from app.models import Conversation, Direction, Message, Store

# Newest activity first, on the index `ix_conversations_store_last_message` (store_id, last_message_at, id).
CONVERSATION_ORDER = Keyset((Conversation.last_message_at, Conversation.id), descending=True)


@dataclass(frozen=True)
class ConversationSummary:
    conversation: Conversation
    last_text: str | None
    last_direction: str | None
    last_created_at: datetime | None
    unread: int


class ConversationRepository(TenantScopedRepository[Conversation]):
    """Conversations, scoped to one tenant through their store."""

    model = Conversation

    def get_readable_statement(self) -> Select[Conversation]:
        return (
            self.get_base_statement()
            .join(Store, Store.id == Conversation.store_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    async def get(
        self, store_id: uuid.UUID, conversation_id: uuid.UUID, *, for_update: bool = False
    ) -> Conversation | None:
        """`for_update` waits for a worker handling the chat (it holds the row) and keeps it from changing
        until the request's transaction ends, so a change decided on the row's values is not lost. NO KEY
        UPDATE, like the worker's lock: inbound messages being inserted into the chat need not wait."""
        statement = self.get_readable_statement().where(
            Conversation.store_id == store_id, Conversation.id == conversation_id
        )
        if for_update:
            statement = statement.with_for_update(of=Conversation, key_share=True)
        return await self.get_one_or_none(statement)

    async def set_bot_paused(self, conversation: Conversation, paused: bool) -> Conversation:
        """Pausing starts the handoff clock (the database's, like the row's other timestamps)."""
        return await self.update(
            conversation, update_dict={"bot_paused": paused, "bot_paused_at": func.now() if paused else None}
        )

    async def list_page(
        self, store_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> tuple[list[ConversationSummary], str | None]:
        """The chats with activity, newest first, each with its last message and its unread count: the inbound
        messages after the store's last outbound one in the chat (all of them if the store never wrote). Each
        of the page's chats costs two short range scans of `ix_messages_conversation_created`."""
        last, last_out, counted = aliased(Message), aliased(Message), aliased(Message)
        last_message = (
            select(last.text, last.direction, last.created_at)
            .where(last.conversation_id == Conversation.id)
            .order_by(last.created_at.desc(), last.id.desc())
            .limit(1)
            .lateral("last_message")
        )
        last_outbound = (
            select(last_out.created_at, last_out.id)
            .where(
                last_out.conversation_id == Conversation.id, last_out.direction == Direction.outbound.value
            )
            .order_by(last_out.created_at.desc(), last_out.id.desc())
            .limit(1)
            .lateral("last_outbound")
        )
        unread = (
            select(func.count())
            .where(
                counted.conversation_id == Conversation.id,
                counted.direction == Direction.inbound.value,
                or_(
                    last_outbound.c.id.is_(None),
                    tuple_(counted.created_at, counted.id)
                    > tuple_(last_outbound.c.created_at, last_outbound.c.id),
                ),
            )
            .scalar_subquery()
        )
        statement = (
            self.get_readable_statement()
            .add_columns(last_message.c.text, last_message.c.direction, last_message.c.created_at, unread)
            .outerjoin(last_message, true())
            .outerjoin(last_outbound, true())
            # A chat without a message yet (no activity) has no place in an activity order; the keyset's
            # tuple comparison would also skip a NULL.
            .where(and_(Conversation.store_id == store_id, Conversation.last_message_at.is_not(None)))
        )
        statement = CONVERSATION_ORDER.apply(statement, limit=limit, cursor=cursor)
        rows = [
            ConversationSummary(row[0], row[1], row[2], row[3], row[4])
            for row in await self.session.execute(statement)
        ]
        return CONVERSATION_ORDER.page(
            rows,
            limit=limit,
            key=_summary_key,
        )


def _summary_key(row: ConversationSummary) -> tuple[datetime, uuid.UUID]:
    # Listed chats have a last_message_at (the statement filters on it).
    assert row.conversation.last_message_at is not None
    return row.conversation.last_message_at, row.conversation.id
