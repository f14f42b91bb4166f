"""Handing a chat to a person and back.

The bot pauses a chat by itself when the customer asks for a person (a handoff); the store resumes it here, or
lets the worker resume it after `settings.handoff.auto_resume_minutes` without a human reply. The worker reads
`bot_paused` under the conversation's lock for every message, so a change applies from the next message on.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations.errors import ConversationNotFound
from app.conversations.repository import ConversationRepository
from app.conversations.schemas import ConversationPage, ConversationSummaryRead, LastMessage
from app.messages.chats import chat_name, shown_jid
from app.models import Conversation, Tenant
from app.stores.service import store as store_service


class ConversationService:
    async def get(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        conversation_id: str,
        for_update: bool = False,
    ) -> Conversation:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        try:
            conversation_uuid = uuid.UUID(conversation_id)
        except ValueError as exc:
            raise ConversationNotFound(conversation_id) from exc
        repository = ConversationRepository.for_tenant(session, tenant.id)
        conversation = await repository.get(store.id, conversation_uuid, for_update=for_update)
        if conversation is None:
            raise ConversationNotFound(conversation_id)
        return conversation

    async def list_conversations(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, limit: int, cursor: str | None
    ) -> ConversationPage:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        page, next_cursor = await ConversationRepository.for_tenant(session, tenant.id).list_page(
            store.id, limit=limit, cursor=cursor
        )
        items = []
        for row in page:
            chat = row.conversation
            last = None
            if row.last_direction is not None and row.last_created_at is not None:
                last = LastMessage(
                    text=row.last_text, direction=row.last_direction, created_at=row.last_created_at
                )
            items.append(
                ConversationSummaryRead(
                    id=chat.id,
                    chat=chat_name(shown_jid(chat.chat_jid, chat.alt_jid)),
                    chat_jid=chat.chat_jid,
                    alt_jid=chat.alt_jid,
                    customer_name=chat.customer_name,
                    last_message_at=chat.last_message_at,
                    last_message=last,
                    unread_count=row.unread,
                    bot_paused=chat.bot_paused,
                    bot_paused_at=chat.bot_paused_at,
                )
            )
        return ConversationPage(items=items, next_cursor=next_cursor)

    async def set_bot_paused(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, conversation_id: str, paused: bool
    ) -> Conversation:
        conversation = await self.get(
            session, tenant=tenant, store_id=store_id, conversation_id=conversation_id, for_update=True
        )
        if conversation.bot_paused == paused:
            return conversation  # pausing a paused chat keeps its clock: it is not a human reply
        return await ConversationRepository.for_tenant(session, tenant.id).set_bot_paused(
            conversation, paused
        )


conversation = ConversationService()
