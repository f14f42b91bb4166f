from __future__ import annotations

import uuid

from sqlalchemy import select, update

from app.kit.db import AsyncSessionMaker, transaction
from app.models import Conversation, Message, Store, StoreStatus

TO = "+5491166660000"
TO_JID = "5491166660000@s.whatsapp.net"


async def set_status(sessionmaker: AsyncSessionMaker, store_id: str, status: StoreStatus) -> None:
    """As the session manager reports it (no manager runs in the API-only tests)."""
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(Store).where(Store.id == uuid.UUID(store_id)).values(status=status.value)
        )


async def rows(sessionmaker: AsyncSessionMaker, store_id: str) -> list[Message]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(Message).where(Message.store_id == uuid.UUID(store_id)).order_by(Message.seq)
        )
        return list(found)


async def conversation(sessionmaker: AsyncSessionMaker, store_id: str, chat_jid: str) -> Conversation | None:
    async with sessionmaker() as session:
        return await session.scalar(
            select(Conversation).where(
                Conversation.store_id == uuid.UUID(store_id), Conversation.chat_jid == chat_jid
            )
        )
