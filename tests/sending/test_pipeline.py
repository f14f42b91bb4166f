"""Sending with the whole pipeline running: the API, the session manager (simulator) and the worker."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.contracts import sim_inbound_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.models import Conversation, Message, Store, StoreStatus
from tests.bots.test_menu import menu_config
from tests.conversations.test_handoff_pipeline import _handled_without_reply
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status
from tests.workers.helpers import customer, inject, running_worker, sent_by_chat

PHONE = "+5493400000077"


async def _store(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis, bot: dict[str, object]
) -> uuid.UUID:
    tenant_id = uuid.UUID((await client.get("/v1/users/me")).json()["tenant"]["id"])
    store_id = await create_store(sessionmaker, redis, paired_phone=PHONE, tenant_id=tenant_id)
    response = await client.put(f"/v1/stores/{store_id}/bot", json=bot)
    assert response.status_code == 200, response.text
    return store_id


def _number(chat_jid: str) -> str:
    return "+" + chat_jid.split("@")[0]


async def _outbound(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, chat_jid: str) -> list[Message]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.store_id == store_id, Conversation.chat_jid == chat_jid, Message.direction == "out"
            )
            .order_by(Message.seq)
        )
        return list(found)


async def test_a_send_reaches_the_phone_in_order_with_the_bots_replies(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)
    store_id = await _store(client, sessionmaker, redis, {"kind": "echo", "config": {}})
    chat = customer(21)
    url = f"/v1/stores/{store_id}/messages"

    async with (
        running_manager(quick, sessionmaker, redis, redis_url),
        running_worker(quick, sessionmaker, redis, redis_url),
    ):
        await wait_status(sessionmaker, store_id, "connected")
        # A notification (`pause_bot: false`): the bot keeps answering the chat.
        first = await client.post(
            url, json={"to": _number(chat), "text": "Hola, ¿en qué te ayudo?", "pause_bot": False}
        )
        assert first.status_code == 202, first.text

        async def on_the_phone() -> list[str]:
            return (await sent_by_chat(redis, [store_id]))[(store_id, chat)]

        assert await wait_for(on_the_phone, timeout=20, what="the send on the phone") == [
            "Hola, ¿en qué te ayudo?"
        ]

        async def read() -> bool:
            found = await client.get(f"{url}/{first.json()['id']}")
            return found.json()["status"] == "read" and found.json()["whatsapp_id"] is not None

        await wait_for(read, timeout=20, what="the send delivered and read")

        # The customer's messages (answered by the echo bot) and the store's sends, interleaved in one chat:
        # the phone gets them in the chat's order (the rows' seq), whoever wrote them.
        for i in range(6):
            await inject(redis, store_id, chat, f"cliente {i}")
            response = await client.post(
                url, json={"to": _number(chat), "text": f"tienda {i}", "pause_bot": False}
            )
            assert response.status_code == 202, response.text

        async def all_sent() -> bool:
            return len(await on_the_phone()) >= 13

        await wait_for(all_sent, timeout=30, what="every reply and send on the phone")
        phone = await on_the_phone()
        rows = await _outbound(sessionmaker, store_id, chat)
        assert phone == [row.text for row in rows]  # the network got the chat's order
        assert [t for t in phone if t.startswith("tienda")] == [f"tienda {i}" for i in range(6)]
        assert [t for t in phone if t.startswith("cliente")] == [f"cliente {i}" for i in range(6)]

        async def outcomes_written() -> bool:  # the network answers before the outcome's batch commits
            statuses = {row.status for row in await _outbound(sessionmaker, store_id, chat)}
            return statuses <= {"sent", "delivered", "read"}

        await wait_for(outcomes_written, timeout=20, what="every send's outcome")


async def test_sends_queued_while_the_store_is_down_keep_their_place_behind_the_bots_reply(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    """The bot's reply and two sends all pending at once (the session manager away): sent oldest first."""
    quick = fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)
    store_id = await _store(client, sessionmaker, redis, {"kind": "echo", "config": {}})
    chat = customer(22)
    url = f"/v1/stores/{store_id}/messages"
    async with running_manager(quick, sessionmaker, redis, redis_url):
        await wait_status(sessionmaker, store_id, "connected")
        await inject(redis, store_id, chat, "primero")

        async def saved() -> bool:
            async with sessionmaker() as session:
                return (
                    await session.scalar(select(Message.id).where(Message.store_id == store_id))
                ) is not None

        await wait_for(saved, what="the customer's message saved")
    # The manager stopped (the store still reads `connected`: a crash would leave it so); the worker answers.
    async with running_worker(quick, sessionmaker, redis, redis_url):

        async def answered() -> bool:
            return len(await _outbound(sessionmaker, store_id, chat)) == 1

        await wait_for(answered, timeout=20, what="the bot's reply written")
    async with transaction(sessionmaker) as session:
        store = await session.get(Store, store_id)
        assert store is not None
        store.status = StoreStatus.connected.value
    for text in ("segundo", "tercero"):
        response = await client.post(url, json={"to": _number(chat), "text": text, "pause_bot": False})
        assert response.status_code == 202, response.text
    assert [row.status for row in await _outbound(sessionmaker, store_id, chat)] == ["pending"] * 3
    async with running_manager(quick, sessionmaker, redis, redis_url):

        async def phone() -> list[str] | None:
            got = (await sent_by_chat(redis, [store_id]))[(store_id, chat)]
            return got if len(got) == 3 else None

        assert await wait_for(phone, timeout=20, what="three sends") == ["primero", "segundo", "tercero"]


async def test_a_human_reply_pauses_the_bot_for_the_next_customer_message(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)
    store_id = await _store(client, sessionmaker, redis, {"kind": "menu", "config": menu_config()})
    chat = customer(23)

    async def phone() -> list[str]:
        return (await sent_by_chat(redis, [store_id]))[(store_id, chat)]

    async with (
        running_manager(quick, sessionmaker, redis, redis_url),
        running_worker(quick, sessionmaker, redis, redis_url),
    ):
        await wait_status(sessionmaker, store_id, "connected")
        await inject(redis, store_id, chat, "hola")
        await wait_for(phone, timeout=20, what="the bot's menu")
        response = await client.post(
            f"/v1/stores/{store_id}/messages",
            json={"to": _number(chat), "text": "Hola, soy Marta de la tienda"},
        )
        assert response.status_code == 202, response.text

        async def human_sent() -> bool:
            return "Hola, soy Marta de la tienda" in await phone()

        await wait_for(human_sent, timeout=20, what="the person's reply on the phone")
        before = len(await phone())
        quiet = await inject(redis, store_id, chat, "1")
        await wait_for(
            lambda: _handled_without_reply(sessionmaker, store_id, quiet), timeout=20, what="a paused chat"
        )
        assert len(await phone()) == before


async def test_the_owner_writing_from_the_phone_pauses_the_bot_but_our_own_sends_do_not(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)
    store_id = await _store(client, sessionmaker, redis, {"kind": "menu", "config": menu_config()})
    chat, other = customer(24), customer(25)

    async def phone(jid: str) -> list[str]:
        return (await sent_by_chat(redis, [store_id]))[(store_id, jid)]

    async def conversation(jid: str) -> Conversation | None:
        async with sessionmaker() as session:
            return await session.scalar(
                select(Conversation).where(Conversation.store_id == store_id, Conversation.chat_jid == jid)
            )

    async with (
        running_manager(quick, sessionmaker, redis, redis_url),
        running_worker(quick, sessionmaker, redis, redis_url),
    ):
        await wait_status(sessionmaker, store_id, "connected")
        # A notification through the API (not pausing), then the same message reported back as from-me (as
        # another linked device would see it): it is ours, so it changes nothing.
        sent = await client.post(
            f"/v1/stores/{store_id}/messages",
            json={"to": _number(other), "text": "aviso", "pause_bot": False},
        )

        async def sent_id() -> str | None:
            return (await client.get(f"/v1/stores/{store_id}/messages/{sent.json()['id']}")).json()[
                "whatsapp_id"
            ]

        wa_id = await wait_for(sent_id, timeout=20, what="the notification sent")
        # The owner answers `chat` from the phone, through the simulator's API.
        owner = await client.post(
            f"/v1/sim/stores/{store_id}/inbound",
            json={"from": _number(chat), "text": "Te atiendo yo, Marta", "from_me": True},
        )
        assert owner.status_code == 202, owner.text
        echo = {"id": wa_id, "from": other, "text": "aviso", "ts": "1764300000000", "from_me": "1"}
        await redis.xadd(sim_inbound_stream(store_id), echo)  # type: ignore[arg-type]

        async def paused() -> Conversation | None:
            found = await conversation(chat)
            return found if found is not None and found.bot_paused else None

        by_phone = await wait_for(paused, timeout=20, what="the chat paused by the owner's message")
        assert by_phone.bot_paused_at is not None
        async with sessionmaker() as session:
            mine = (
                await session.scalars(
                    select(Message).where(Message.conversation_id == by_phone.id).order_by(Message.seq)
                )
            ).all()
        assert [(m.direction, m.status, m.text, m.wa_id) for m in mine] == [
            ("out", "sent", "Te atiendo yo, Marta", owner.json()["id"])
        ]
        # The customer's next message gets no bot reply; nothing went back to the owner either.
        quiet = await inject(redis, store_id, chat, "gracias")
        await wait_for(
            lambda: _handled_without_reply(sessionmaker, store_id, quiet), timeout=20, what="a paused chat"
        )
        assert await phone(chat) == []
        # Our own send reported back: no second row, no pause (it came before `gracias` on the network).
        notified = await conversation(other)
        assert notified is not None and notified.bot_paused is False
        assert [m.text for m in await _outbound(sessionmaker, store_id, other)] == ["aviso"]
        await inject(redis, store_id, other, "hola")

        async def menu() -> list[str] | None:
            texts = await phone(other)
            return texts if len(texts) >= 2 else None

        # The menu answers with its greeting then its options, two messages: wait for the first of them (an
        # exact count raced the second send).
        texts = await wait_for(menu, timeout=20, what="the bot answering the notified chat")
        assert texts[0] == "aviso" and "aviso" not in texts[1:]
