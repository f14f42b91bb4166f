"""A chat handed to a person goes back to the bot: by PATCH, or by itself after the store's set minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from redis.asyncio import Redis

from app.kit.db import AsyncSessionMaker
from tests.conversations.helpers import HANDOFF_OPTION, Clock, Customer, menu_store
from workers.handler import InboundHandler

T0 = datetime(2031, 3, 3, 13, 5, tzinfo=UTC)
ANSWER_1 = ["Lunes a sábado de 9 a 20.", "¿Algo más? Elegí otra opción o escribí *menu* para ver todas."]


async def _handed_off(customer: Customer) -> None:
    assert await customer.says("hola")
    assert await customer.says(HANDOFF_OPTION) == ["Ya te atiende alguien del equipo."]
    assert await customer.says("¿hay alguien?") == []  # the bot stays quiet while a person has the chat


async def test_patch_resumes_the_bot_for_the_next_message(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await menu_store(client)
    clock = Clock(T0)
    customer = await Customer.open(sessionmaker, InboundHandler(sessionmaker, redis, clock=clock), store_id)
    await _handed_off(customer)
    assert await customer.conversation() == {"bot_paused": True, "bot_paused_at": T0}  # the handoff's time

    response = await client.patch(
        f"/v1/stores/{store_id}/conversations/{customer.conversation_id}", json={"bot_paused": False}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["bot_paused"], response.json()["bot_paused_at"]) == (False, None)
    assert await customer.says("1") == ANSWER_1

    # And a person can take it again.
    response = await client.patch(
        f"/v1/stores/{store_id}/conversations/{customer.conversation_id}", json={"bot_paused": True}
    )
    assert response.status_code == 200 and response.json()["bot_paused"] is True
    assert await customer.says("1") == []


async def test_the_bot_resumes_by_itself_after_the_stores_minutes_without_a_human_reply(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await menu_store(client)
    response = await client.patch(
        f"/v1/stores/{store_id}", json={"settings": {"handoff": {"auto_resume_minutes": 30}}}
    )
    assert response.status_code == 200, response.text
    clock = Clock(T0)
    customer = await Customer.open(sessionmaker, InboundHandler(sessionmaker, redis, clock=clock), store_id)
    await _handed_off(customer)

    clock.now = T0 + timedelta(minutes=29, seconds=59)
    assert await customer.says("¿siguen ahí?") == []
    assert (await customer.conversation())["bot_paused_at"] == T0  # a customer's message does not reset it

    clock.now = T0 + timedelta(minutes=30)
    assert await customer.says("1") == ANSWER_1
    assert await customer.conversation() == {"bot_paused": False, "bot_paused_at": None}


async def test_without_the_setting_the_chat_stays_with_the_person(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await menu_store(client)
    clock = Clock(T0)
    customer = await Customer.open(sessionmaker, InboundHandler(sessionmaker, redis, clock=clock), store_id)
    await _handed_off(customer)
    clock.now = T0 + timedelta(days=30)
    assert await customer.says("1") == []
    assert await customer.conversation() == {"bot_paused": True, "bot_paused_at": T0}
