from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Tenant
from app.stores.service import store as store_service
from app.web.repository import RecentConversationRepository
from app.web.schemas import ConversationList, ConversationView, MessageView

RECENT_CHATS = 20
MESSAGES_PER_CHAT = 20


async def recent_conversations(session: AsyncSession, *, tenant: Tenant, store_id: str) -> ConversationList:
    store = await store_service.get(session, tenant=tenant, store_id=store_id)  # 404 for another tenant's
    repository = RecentConversationRepository.for_tenant(session, tenant.id)
    chats = await repository.recent(store.id, limit=RECENT_CHATS)
    messages = await repository.last_messages([c.id for c in chats], per_chat=MESSAGES_PER_CHAT)
    by_chat: dict[uuid.UUID, list[MessageView]] = {c.id: [] for c in chats}
    for message in messages:
        by_chat[message.conversation_id].append(
            MessageView(
                direction=message.direction,
                text=message.text,
                status=message.status,
                created_at=message.created_at,
            )
        )
    return ConversationList(
        items=[
            ConversationView(
                id=c.id,
                chat_jid=c.chat_jid,
                customer_name=c.customer_name,
                bot_paused=c.bot_paused,
                last_message_at=c.last_message_at,
                messages=by_chat[c.id],
            )
            for c in chats
        ]
    )
