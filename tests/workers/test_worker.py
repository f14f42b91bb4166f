"""The worker in this process with a session manager on the simulator: order, idempotency, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.config import Settings
from app.contracts import MESSAGES_GROUP, messages_dlq, messages_stream
from app.kit.db import AsyncSessionMaker
from app.models import Message
from sessions.manager import SessionManager
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status
from tests.workers.helpers import customer, inject, running_worker, sent_by_chat
from workers.dlq import list_dead_letters, replay_dead_letters
from workers.handler import InboundHandler, InboundRef
from workers.service import WORKERS_KEY


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return fast_settings(settings, worker_reconcile_seconds=0.2, worker_lease_ttl_seconds=3)


@pytest.fixture
async def manager(
    quick: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> AsyncIterator[SessionManager]:
    async with running_manager(quick, sessionmaker, redis, redis_url) as manager:
        yield manager


async def _counts(sessionmaker: AsyncSessionMaker) -> dict[tuple[str, str], int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Message.direction, Message.status, func.count()).group_by(
                Message.direction, Message.status
            )
        )
        return {(d, s): n for d, s, n in rows.all()}


async def test_replies_keep_each_chats_order_across_stores_and_chats(
    manager: SessionManager, quick: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    stores = [
        await create_store(sessionmaker, redis, name=f"S{n}", paired_phone=f"+54933{n:08d}") for n in range(3)
    ]
    for store_id in stores:
        await wait_status(sessionmaker, store_id, "connected")
    chats, per_chat = 8, 12
    async with running_worker(quick, sessionmaker, redis, redis_url):
        for n in range(per_chat):  # interleaved across chats and stores, as customers type
            for store_id in stores:
                for c in range(chats):
                    await inject(redis, store_id, customer(c), f"c{c} m{n}")

        async def all_sent() -> bool:
            sent = await sent_by_chat(redis, stores)
            return sum(len(v) for v in sent.values()) == len(stores) * chats * per_chat

        await wait_for(all_sent, timeout=60, interval=0.2, what="every reply sent")
    sent = await sent_by_chat(redis, stores)
    for store_id in stores:
        for c in range(chats):
            assert sent[(store_id, customer(c))] == [f"c{c} m{n}" for n in range(per_chat)]
    counts = await _counts(sessionmaker)
    assert counts[("in", "handled")] == len(stores) * chats * per_chat

    async def all_final() -> bool:
        # A send is recorded `sent` by the outcome flush that follows it: the simulator may show the reply a
        # moment before its row says so.
        counts = await _counts(sessionmaker)
        final = sum(counts.get(("out", status), 0) for status in ("sent", "delivered", "read"))
        return final == len(stores) * chats * per_chat and sum(counts.values()) == 2 * final

    await wait_for(all_final, timeout=10, interval=0.1, what="every reply row sent")


async def test_a_redelivered_entry_is_not_applied_twice(
    manager: SessionManager, quick: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5493400000001")
    await wait_status(sessionmaker, store_id, "connected")
    await inject(redis, store_id, customer(1), "hola")
    message = await wait_for(lambda: _first_inbound(sessionmaker, store_id), what="the inbound row")
    handler = InboundHandler(sessionmaker, redis)
    ref = InboundRef(str(message.id), customer(1))
    await handler.handle([ref])
    await handler.handle([ref])  # the same entry again (a crash before the ack)
    async with sessionmaker() as session:
        replies = (
            await session.execute(select(func.count()).where(Message.reply_to_id == message.id))
        ).scalar_one()
    assert replies == 1


async def _first_inbound(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID) -> Message | None:
    async with sessionmaker() as session:
        return (
            await session.execute(
                select(Message).where(Message.store_id == store_id, Message.direction == "in")
            )
        ).scalar_one_or_none()


class PoisonHandler(InboundHandler):
    """Fails every message whose WhatsApp id starts with POISON, like a bot bug triggered by one message."""

    async def handle(self, refs: list[InboundRef]) -> None:
        if any(ref.wa_id.startswith("POISON") for ref in refs):
            raise RuntimeError("bot crashed on this message")
        await super().handle(refs)


async def test_a_poison_message_goes_to_the_dead_letters_and_the_chats_go_on(
    manager: SessionManager, quick: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5493400000002")
    await wait_status(sessionmaker, store_id, "connected")
    handler = PoisonHandler(sessionmaker, redis)
    async with running_worker(quick, sessionmaker, redis, redis_url, handler=handler) as worker:
        await inject(redis, store_id, customer(1), "uno")
        poison = await inject(redis, store_id, customer(1), "dos", wa_id="POISON-1")
        await inject(redis, store_id, customer(1), "tres")
        for n in range(5):
            await inject(redis, store_id, customer(2), f"otro {n}")

        async def done() -> bool:
            sent = await sent_by_chat(redis, [store_id])
            return len(sent[(store_id, customer(1))]) == 2 and len(sent[(store_id, customer(2))]) == 5

        await wait_for(done, timeout=30, what="both chats answered around the poison message")
        sent = await sent_by_chat(redis, [store_id])
        assert sent[(store_id, customer(1))] == ["uno", "tres"]  # the chat went on, in order
        letters = await list_dead_letters(redis, store_id)
        assert len(letters) == 1 and "bot crashed" in letters[0].error
        async with sessionmaker() as session:
            dead = (await session.execute(select(Message).where(Message.wa_id == poison))).scalar_one()
        assert dead.status == "dead" and dead.error is not None
        assert (await redis.xpending(messages_stream(store_id), MESSAGES_GROUP))["pending"] == 0

        # Fixed (here: the bug no longer triggers), the dead letter is replayed and answered.
        worker.handler = InboundHandler(sessionmaker, redis)
        assert await replay_dead_letters(redis, sessionmaker, store_id) == 1
        await wait_for(
            lambda: _sent_count(redis, store_id, customer(1), 3),
            timeout=20,
            what="the replayed message answered",
        )
        assert await redis.xlen(messages_dlq(store_id)) == 0


async def _sent_count(redis: Redis, store_id: uuid.UUID, chat: str, n: int) -> bool:
    return len((await sent_by_chat(redis, [store_id]))[(store_id, chat)]) == n


class HoldingHandler(InboundHandler):
    """Holds every message whose WhatsApp id starts with HOLD until released: its entry stays unacknowledged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def handle(self, refs: list[InboundRef]) -> None:
        if any(ref.wa_id.startswith("HOLD") for ref in refs):
            self.holding.set()
            await self.release.wait()
        await super().handle(refs)


async def test_streams_are_trimmed_only_up_to_what_is_acknowledged(
    manager: SessionManager, quick: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5493400000003")
    await wait_status(sessionmaker, store_id, "connected")
    handler = HoldingHandler(sessionmaker, redis)
    stream = messages_stream(store_id)
    async with running_worker(quick, sessionmaker, redis, redis_url, handler=handler) as worker:
        for n in range(10):
            await inject(redis, store_id, customer(1), f"m{n}")
        await wait_for(lambda: _sent_count(redis, store_id, customer(1), 10), timeout=30, what="10 replies")
        await inject(redis, store_id, customer(2), "espera", wa_id="HOLD-1")  # another chat, held
        await asyncio.wait_for(handler.holding.wait(), 10)
        for n in range(10, 20):
            await inject(redis, store_id, customer(1), f"m{n}")
        await wait_for(lambda: _sent_count(redis, store_id, customer(1), 20), timeout=30, what="20 replies")
        await wait_for(lambda: _pending_count(redis, stream, 1), what="only the held entry unacknowledged")
        pending: Any = await redis.xpending_range(stream, MESSAGES_GROUP, min="-", max="+", count=10)
        held_entry = pending[0]["message_id"]
        before = [entry_id for entry_id, _ in await redis.xrange(stream)]
        await worker.trim()
        after = [entry_id for entry_id, _ in await redis.xrange(stream)]
        # Everything acknowledged before the held entry is gone; the held entry (and what follows it, though
        # acknowledged: MINID cuts at the oldest pending) is still there for a replay.
        assert len(before) == 21 and after == before[before.index(held_entry) :] and len(after) == 11
        handler.release.set()
        await wait_for(
            lambda: _sent_count(redis, store_id, customer(2), 1), timeout=20, what="the held reply"
        )
        await wait_for(lambda: _pending_count(redis, stream, 0), what="every entry acknowledged")


async def _pending_count(redis: Redis, stream: str, n: int) -> bool:
    return int((await redis.xpending(stream, MESSAGES_GROUP))["pending"]) == n


async def test_stores_created_at_runtime_are_picked_up(
    manager: SessionManager, quick: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    async with running_worker(quick, sessionmaker, redis, redis_url) as worker:

        async def reviewed_once() -> bool:  # its first review (heartbeat) ran: the store below comes later
            return await redis.zscore(WORKERS_KEY, worker.leases.token) is not None

        await wait_for(reviewed_once, what="the worker's first review")
        store_id = await create_store(sessionmaker, redis, paired_phone="+5493400000004")
        await wait_status(sessionmaker, store_id, "connected")
        await inject(redis, store_id, customer(1), "hola")
        await wait_for(lambda: _sent_count(redis, store_id, customer(1), 1), timeout=20, what="a reply")
        assert store_id in worker.streams.owned()
