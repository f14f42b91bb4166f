from __future__ import annotations

import uuid

from sqlalchemy import Select, func

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
