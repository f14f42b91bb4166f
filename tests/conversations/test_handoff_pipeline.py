"""Handoff and resume with the whole pipeline running: simulator, session manager, worker, API."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message, MessageStatus
from tests.bots.test_menu import menu_config
from tests.conversations.helpers import HANDOFF_OPTION
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status
from tests.workers.helpers import customer, inject, running_worker, sent_by_chat


async def _handled_without_reply(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, wa_id: str) -> bool:
    async with sessionmaker() as session:
        inbound = await session.scalar(
            select(Message).where(Message.store_id == store_id, Message.wa_id == wa_id)
        )
        if inbound is None or inbound.status != MessageStatus.handled:
            return False
        replies = await session.scalar(select(func.count()).where(Message.reply_to_id == inbound.id))
        assert replies == 0
        return True


async def test_a_resumed_chat_is_answered_again(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)
    tenant_id = uuid.UUID((await client.get("/v1/users/me")).json()["tenant"]["id"])  # the client's tenant
    store_id = await create_store(sessionmaker, redis, paired_phone="+5493400000077", tenant_id=tenant_id)
    response = await client.put(f"/v1/stores/{store_id}/bot", json={"kind": "menu", "config": menu_config()})
    assert response.status_code == 200, response.text
    chat = customer(7)

    async def sent() -> list[str]:
        return (await sent_by_chat(redis, [store_id]))[(store_id, chat)]

    async with (
        running_manager(quick, sessionmaker, redis, redis_url),
        running_worker(quick, sessionmaker, redis, redis_url),
    ):
        await wait_status(sessionmaker, store_id, "connected")
        await inject(redis, store_id, chat, HANDOFF_OPTION)

        async def handed_off() -> bool:
            return "Ya te atiende alguien del equipo." in await sent()

        await wait_for(handed_off, timeout=20, what="the handoff reply")
        quiet = await inject(redis, store_id, chat, "¿hay alguien?")
        await wait_for(
            lambda: _handled_without_reply(sessionmaker, store_id, quiet), timeout=20, what="a paused chat"
        )

        async with sessionmaker() as session:
            conversation_id = await session.scalar(
                select(Conversation.id).where(
                    Conversation.store_id == store_id, Conversation.chat_jid == chat
                )
            )
        response = await client.patch(
            f"/v1/stores/{store_id}/conversations/{conversation_id}", json={"bot_paused": False}
        )
        assert response.status_code == 200, response.text
        await inject(redis, store_id, chat, "1")

        async def answered() -> bool:
            return "Lunes a sábado de 9 a 20." in await sent()

        await wait_for(answered, timeout=20, what="the bot's answer after the resume")
