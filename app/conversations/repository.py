from __future__ import annotations

import uuid

from sqlalchemy import Select

from app.kit.repository import TenantScopedRepository
from app.models import Conversation, Store


class ConversationRepository(TenantScopedRepository[Conversation]):
    """Conversations, scoped to one tenant through their store."""

    model = Conversation

    def get_readable_statement(self) -> Select[Conversation]:
        return (
            self.get_base_statement()
            .join(Store, Store.id == Conversation.store_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    async def get(self, store_id: uuid.UUID, conversation_id: uuid.UUID) -> Conversation | None:
        statement = self.get_readable_statement().where(
            Conversation.store_id == store_id, Conversation.id == conversation_id
        )
        return await self.get_one_or_none(statement)
