"""Processes really killed in the middle of a load: nothing lost, nothing twice, every chat in order.

A session manager (simulator) and workers run as `mostrador` subprocesses on real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.contracts import SIM_DEVICE_GROUP, sessions_lease_key, sim_inbound_stream, worker_lease_key
from app.kit.db import AsyncSessionMaker
from app.models import Message
from bench.harness import (
    Processes,
    as_dict,
    check,
    create_stores,
    inject,
    inject_steady,
    settled,
    wait_connected,
    wait_replies,
)
from tests.sessions.helpers import wait_for
from tests.workers.helpers import check_after_interruptions

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Processes]:
    group = Processes(database_url, redis_url, tmp_path / "logs")
    yield group
    group.stop_all()


# The full load: 20 stores x 50 chats x 20 messages, injected as fast as the injector can.
STORES, CHATS, PER_CHAT = 20, 50, 20


async def test_every_chat_is_answered_in_order_under_full_load(
    processes: Processes, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    stores = await create_stores(sessionmaker, redis, STORES)
    processes.start("sessions", "sessions")
    processes.start("worker-0", "worker")
    processes.start("worker-1", "worker")
    await wait_connected(sessionmaker, stores)
    total = STORES * CHATS * PER_CHAT
    await inject(redis, stores, CHATS, PER_CHAT)
    seen = await wait_replies(redis, stores, total, timeout=240)
    await wait_for(lambda: settled(redis, sessionmaker, stores), timeout=60, what="nothing left to send")
    outcome = await check(redis, sessionmaker, stores, CHATS, PER_CHAT)
    assert outcome.clean, as_dict(outcome)
    assert seen == total and outcome.received == total and outcome.order_violations == 0


async def test_sigkill_of_a_worker_mid_load_loses_and_repeats_nothing(
    processes: Processes, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    stores_n, chats, per_chat = STORES, CHATS, PER_CHAT
    stores = await create_stores(sessionmaker, redis, stores_n)
    processes.start("sessions", "sessions")
    first, second = processes.start("worker-0", "worker"), processes.start("worker-1", "worker")
    await wait_connected(sessionmaker, stores)

    async def split() -> bool:
        owners = await redis.mget([worker_lease_key(s) for s in stores])
        pids = {int(o.split(":")[1]) for o in owners if o}
        return None not in owners and pids == {first.pid, second.pid}

    await wait_for(split, timeout=60, interval=0.2, what="the two workers splitting the stores")

    total = stores_n * chats * per_chat
    await inject(redis, stores, chats, per_chat)
    await wait_replies(redis, stores, total // 4, timeout=120)
    processes.kill("worker-0", signal.SIGKILL)  # mid-load: in-flight handlers die with it

    seen = await wait_replies(redis, stores, total, timeout=240)
    await wait_for(lambda: settled(redis, sessionmaker, stores), timeout=60, what="nothing left to send")
    outcome = await check(redis, sessionmaker, stores, chats, per_chat)
    assert outcome.clean, as_dict(outcome)
    assert seen == total and outcome.received == total
    assert outcome.inbound_not_handled == 0


async def test_session_managers_handing_stores_over_mid_load_send_every_reply_once(
    processes: Processes, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    """Stores handed over on purpose under load (a replica joins: a rebalance; a replica leaves: SIGTERM) finish
    the sends in flight first. Cut short, a send is marked failed by the next owner and never sent."""
    stores_n, chats, per_chat = 10, 20, 40
    stores = await create_stores(sessionmaker, redis, stores_n)
    processes.start("sessions-0", "sessions")
    processes.start("worker", "worker")
    await wait_connected(sessionmaker, stores)
    total = stores_n * chats * per_chat
    load = asyncio.create_task(inject_steady(redis, stores, chats, per_chat, rate=total / 12))
    try:
        await wait_replies(redis, stores, total // 5, timeout=60)
        processes.start("sessions-1", "sessions")  # joins: the first hands it half of the stores
        await wait_for(
            lambda: _held_by_two_managers(redis, stores),
            timeout=60,
            interval=0.2,
            what="the new replica's share",
        )
        processes.kill("sessions-0", signal.SIGTERM)  # leaves: hands its stores back, still under load
        await load
    finally:
        load.cancel()
    seen = await wait_replies(redis, stores, total, timeout=120)
    await wait_for(lambda: settled(redis, sessionmaker, stores), timeout=60, what="nothing left to send")
    outcome = await check(redis, sessionmaker, stores, chats, per_chat)
    assert outcome.clean and outcome.replies_not_sent == 0, as_dict(outcome)
    assert seen == total and outcome.inbound_not_handled == 0


async def test_sigkill_of_a_session_manager_mid_load_loses_no_inbound_and_sends_nothing_twice(
    database_url: str, redis_url: str, tmp_path: Path, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    """The other replica takes the dead one's stores once their leases expire. Every inbound message is kept
    (the network redelivers what was not acknowledged; a message already saved is recognised) and handled once.
    A reply the dead process had claimed but not finished is marked failed, never sent again: it may have
    reached the customer. Nothing else may be missing."""
    processes = Processes(
        database_url, redis_url, tmp_path / "logs", {"MOSTRADOR_SESSIONS_LEASE_TTL_SECONDS": "4"}
    )
    stores_n, chats, per_chat = 10, 20, 40
    try:
        stores = await create_stores(sessionmaker, redis, stores_n)
        processes.start("sessions-0", "sessions")
        processes.start("sessions-1", "sessions")
        processes.start("worker", "worker")
        await wait_connected(sessionmaker, stores)
        await wait_for(
            lambda: _held_by_two_managers(redis, stores),
            timeout=60,
            interval=0.2,
            what="the two replicas' split",
        )
        total = stores_n * chats * per_chat
        load = asyncio.create_task(inject_steady(redis, stores, chats, per_chat, rate=total / 10))
        try:
            await wait_replies(redis, stores, total // 4, timeout=60)
            processes.kill("sessions-0", signal.SIGKILL)  # mid-load: its claims, sends and saves die with it
            await load
        finally:
            load.cancel()

        saved: list[int] = []

        async def all_saved() -> bool:
            async with sessionmaker() as session:
                inbound = await session.scalar(select(func.count()).where(Message.direction == "in"))
            saved.append(int(inbound or 0))
            return inbound == total

        # Every inbound saved, every row final, every stream entry acknowledged: nothing can be sent any more.
        try:
            await wait_for(all_saved, timeout=120, interval=0.5, what="every inbound message saved")
        except AssertionError:
            # Seen once in a full CI run, never alone: say how far it got and what the survivor logged.
            pending = [
                (await redis.xpending(sim_inbound_stream(s), SIM_DEVICE_GROUP))["pending"] for s in stores
            ]
            tail = (tmp_path / "logs" / "sessions-1.log").read_text(errors="replace")[-4000:]
            raise AssertionError(
                f"inbound saved {saved[-1]} of {total} (first {saved[0]}); sim entries pending per store "
                f"{pending}; survivor's log ends:\n{tail}"
            ) from None
        await wait_for(lambda: settled(redis, sessionmaker, stores), timeout=60, what="nothing left to send")
        outcome, interrupted, report = await check_after_interruptions(
            redis, sessionmaker, stores, chats, per_chat
        )
        # Every inbound message got its reply row; the only replies not sent are the interrupted ones.
        assert outcome.replies_not_sent == interrupted and outcome.missing <= interrupted, report
    finally:
        processes.stop_all()


async def _held_by_two_managers(redis: Redis, stores: list[uuid.UUID]) -> bool:
    """Every store's session lease is held, and by two owners between them."""
    owners = await redis.mget([sessions_lease_key(s) for s in stores])
    return None not in owners and len(set(owners)) == 2
