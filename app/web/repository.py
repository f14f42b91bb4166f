from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select

from app.kit.repository import TenantScopedRepository
from app.models import Conversation, Message, Store


class RecentConversationRepository(TenantScopedRepository[Conversation]):
    """The store page's read-only view: a store's latest chats and their last messages, tenant-scoped."""

    model = Conversation

    def get_readable_statement(self) -> Select[Conversation]:
        return (
            self.get_base_statement()
            .join(Store, Store.id == Conversation.store_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    async def recent(self, store_id: uuid.UUID, *, limit: int) -> Sequence[Conversation]:
        statement = (
            self.get_readable_statement()
            .where(Conversation.store_id == store_id)
            .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id)
            .limit(limit)
        )
        return await self.get_all(statement)

    async def last_messages(self, conversation_ids: Sequence[uuid.UUID], *, per_chat: int) -> list[Message]:
        """Up to `per_chat` latest messages of each conversation (ids from `recent`, so already this
        tenant's), oldest first."""
        if not conversation_ids:
            return []
        rank = (
            func.row_number()
            .over(partition_by=Message.conversation_id, order_by=Message.seq.desc())
            .label("rank")
        )
        ranked = select(Message.id, rank).where(Message.conversation_id.in_(conversation_ids)).subquery()
        statement = (
            select(Message)
            .join(ranked, ranked.c.id == Message.id)
            .where(ranked.c.rank <= per_chat)
            .order_by(Message.seq)
        )
        return list((await self.session.scalars(statement)).all())
