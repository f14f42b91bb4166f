"""Drive a bot the way the worker does: one transaction per message, `DatabaseBotTools` on a real session."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.bots.configs import Language
from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Store, Tenant
from workers.bots.base import BotContext, BotMessage, BotReply
from workers.bots.registry import language_of, load_bot
from workers.bots.tools import DatabaseBotTools


async def create_store(
    sessionmaker: AsyncSessionMaker,
    *,
    kind: str = "echo",
    config: dict[str, Any] | None = None,
    name: str = "Rulos",
    tenant_id: uuid.UUID | None = None,
) -> uuid.UUID:
    async with sessionmaker() as session, session.begin():
        if tenant_id is None:
            tenant = Tenant(name="bots-test")
            session.add(tenant)
            await session.flush()
            tenant_id = tenant.id
        store = Store(tenant_id=tenant_id, name=name, bot_kind=kind, bot_config=config or {})
        session.add(store)
        await session.flush()
        return store.id


async def create_conversation(
    sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, chat_jid: str, customer_name: str | None = None
) -> uuid.UUID:
    async with sessionmaker() as session, session.begin():
        conversation = Conversation(store_id=store_id, chat_jid=chat_jid, customer_name=customer_name)
        session.add(conversation)
        await session.flush()
        return conversation.id


@dataclass
class Chat:
    """One customer's chat with a store's bot; `send` handles one message and keeps the state."""

    sessionmaker: AsyncSessionMaker
    store_id: uuid.UUID
    conversation_id: uuid.UUID
    chat_jid: str
    now: datetime
    customer_name: str | None = None
    store_name: str = "Rulos"
    language: Language | None = None  # overrides the config's (echo has none: the worker's default)
    state: dict[str, Any] = field(default_factory=dict)

    def tools(self, session: AsyncSession, now: datetime | None = None) -> DatabaseBotTools:
        """The tools the worker would give the bot for this chat, on `session`."""
        return DatabaseBotTools(
            session,
            store_id=self.store_id,
            conversation_id=self.conversation_id,
            chat_jid=self.chat_jid,
            now=now or self.now,
        )

    async def send(self, text: str, *, type: str = "text", now: datetime | None = None) -> BotReply:
        now = now or self.now
        async with self.sessionmaker() as session, session.begin():
            store = await session.get(Store, self.store_id)
            assert store is not None
            bot, config = load_bot(store.bot_kind, store.bot_config)
            language = self.language or language_of(config)
            context = BotContext(self.store_id, self.store_name, language, now)
            message = BotMessage(text, type, self.chat_jid, self.customer_name, now)
            tools = self.tools(session, now)
            reply = await bot.handle(context, config, dict(self.state), message, tools)
        assert reply.replies, "a bot is never silent"
        # What the worker stores is JSON: the state must survive the round trip unchanged.
        self.state = json.loads(json.dumps(reply.state))
        assert self.state == reply.state
        return reply


async def open_chat(
    sessionmaker: AsyncSessionMaker,
    *,
    now: datetime,
    store_id: uuid.UUID | None = None,
    kind: str = "echo",
    config: dict[str, Any] | None = None,
    chat_jid: str = "5491155550001@s.whatsapp.net",
    customer_name: str | None = None,
) -> Chat:
    if store_id is None:
        store_id = await create_store(sessionmaker, kind=kind, config=config)
    conversation_id = await create_conversation(sessionmaker, store_id, chat_jid, customer_name)
    return Chat(sessionmaker, store_id, conversation_id, chat_jid, now, customer_name)


def joined(reply: BotReply) -> str:
    return "\n".join(reply.replies)
