"""A store of the API's tenant with a menu bot, and the worker's handler run on its customers' messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message, MessageStatus
from tests.bots.helpers import create_conversation
from tests.bots.test_menu import menu_config
from tests.support import post_store
from workers.handler import InboundHandler, InboundRef

CHAT = "5491155550001@s.whatsapp.net"
HANDOFF_OPTION = "3"  # "Hablar con alguien" in menu_config()


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


async def menu_store(client: AsyncClient) -> str:
    store_id = await post_store(client, "Rulos")
    response = await client.put(f"/v1/stores/{store_id}/bot", json={"kind": "menu", "config": menu_config()})
    assert response.status_code == 200, response.text
    return store_id


@dataclass
class Customer:
    """One chat, its messages handled by the worker's handler exactly as the worker would."""

    sessionmaker: AsyncSessionMaker
    handler: InboundHandler
    store_id: uuid.UUID
    conversation_id: uuid.UUID
    chat_jid: str = CHAT

    @classmethod
    async def open(cls, sessionmaker: AsyncSessionMaker, handler: InboundHandler, store_id: str) -> Customer:
        conversation_id = await create_conversation(sessionmaker, uuid.UUID(store_id), CHAT, "Ana")
        return cls(sessionmaker, handler, uuid.UUID(store_id), conversation_id)

    async def says(self, text: str) -> list[str]:
        """The bot's replies to one more message of the customer (none while a person has the chat)."""
        async with self.sessionmaker() as session, session.begin():
            message = Message(
                store_id=self.store_id,
                conversation_id=self.conversation_id,
                direction="in",
                wa_id=uuid.uuid4().hex,
                sender_jid=self.chat_jid,
                text=text,
                status=MessageStatus.queued.value,
            )
            session.add(message)
        await self.handler.handle([InboundRef(str(message.id), self.chat_jid)])
        async with self.sessionmaker() as session:
            inbound = await session.get(Message, message.id)
            assert inbound is not None and inbound.status == MessageStatus.handled  # handled either way
            replies = await session.scalars(
                select(Message.text).where(Message.reply_to_id == message.id).order_by(Message.seq)
            )
            return [reply or "" for reply in replies]

    async def conversation(self) -> dict[str, Any]:
        async with self.sessionmaker() as session:
            row = await session.get(Conversation, self.conversation_id)
            assert row is not None
            return {"bot_paused": row.bot_paused, "bot_paused_at": row.bot_paused_at}
