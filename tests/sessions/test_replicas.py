"""Several session-manager processes: a store is never connected twice, a killed manager's stores move on.

These start real `mostrador sessions` processes (simulator driver) with the production lease settings and
kill them with real signals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.contracts import SIM_CONFLICTS_KEY, sessions_lease_key
from app.kit.db import AsyncSessionMaker
from app.models import Store
from tests.sessions.helpers import create_store, wait_for

pytestmark = pytest.mark.slow


class Managers:
    def __init__(self, database_url: str, redis_url: str, logs: Path) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
            "MOSTRADOR_ENV": "testing",
        }
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"manager-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mostrador", "sessions"], env=self.env, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def managers(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Managers]:
    group = Managers(database_url, redis_url, tmp_path)
    yield group
    group.stop_all()


async def _owners(redis: Redis, store_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    values = await redis.mget([sessions_lease_key(s) for s in store_ids])
    return dict(zip(store_ids, values, strict=True))


def _pid(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None


async def _connected_count(sessionmaker: AsyncSessionMaker, store_ids: list[uuid.UUID]) -> int:
    async with sessionmaker() as session:
        query = select(func.count()).where(Store.id.in_(store_ids), Store.status == "connected")
        return int((await session.execute(query)).scalar_one())


async def _all_connected_by(
    sessionmaker: AsyncSessionMaker, redis: Redis, store_ids: list[uuid.UUID], pids: set[int]
) -> bool:
    owners = await _owners(redis, store_ids)
    if any(_pid(owner) not in pids for owner in owners.values()):
        return False
    return await _connected_count(sessionmaker, store_ids) == len(store_ids)


async def test_two_managers_split_50_stores_and_one_takes_over_after_sigkill(
    managers: Managers, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    stores = [
        await create_store(sessionmaker, redis, name=f"Store {n}", paired_phone=f"+54911{n:08d}")
        for n in range(50)
    ]
    first, second = managers.start(), managers.start()
    both = {first.pid, second.pid}

    await wait_for(
        lambda: _all_connected_by(sessionmaker, redis, stores, both), timeout=60, what="50 stores connected"
    )

    # Both replicas serve stores: a late starter is handed its share.
    async def split() -> Counter[int | None] | None:
        counts = Counter(_pid(o) for o in (await _owners(redis, stores)).values())
        return counts if min(counts.get(first.pid, 0), counts.get(second.pid, 0)) >= 20 else None

    await wait_for(split, timeout=60, interval=0.5, what="the stores split between the managers")
    await wait_for(
        lambda: _all_connected_by(sessionmaker, redis, stores, both), timeout=60, what="all connected"
    )

    owners = await _owners(redis, stores)
    victims = [s for s, owner in owners.items() if _pid(owner) == first.pid]
    first.kill()  # SIGKILL: no goodbye, leases left to expire
    killed_at = time.monotonic()
    first.wait()

    await wait_for(
        lambda: _all_connected_by(sessionmaker, redis, victims, {second.pid}),
        timeout=30,
        interval=0.1,
        what="the killed manager's stores reconnected by the survivor",
    )
    takeover = time.monotonic() - killed_at
    print(f'{{"sigkill_takeover_seconds": {takeover:.2f}, "stores_moved": {len(victims)}}}')
    assert takeover <= 15
    assert await _connected_count(sessionmaker, stores) == 50
    # The simulated network never saw a store connected twice at once.
    assert await redis.lrange(SIM_CONFLICTS_KEY, 0, -1) == []


async def test_sigterm_hands_the_stores_over_quickly(
    managers: Managers, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    stores = [
        await create_store(sessionmaker, redis, name=f"Store {n}", paired_phone=f"+54922{n:08d}")
        for n in range(10)
    ]
    leaving = managers.start()
    await wait_for(
        lambda: _all_connected_by(sessionmaker, redis, stores, {leaving.pid}), timeout=60, what="connected"
    )
    staying = managers.start()
    # Measure the hand-over, not the new replica's start-up: wait for its first heartbeat.
    await wait_for(
        lambda: _heartbeat_of(redis, staying.pid),
        timeout=30,
        interval=0.1,
        what="the new replica's heartbeat",
    )

    leaving.send_signal(signal.SIGTERM)
    asked_at = time.monotonic()
    await wait_for(
        lambda: _all_connected_by(sessionmaker, redis, stores, {staying.pid}),
        timeout=30,
        interval=0.1,
        what="every store reconnected by the remaining manager",
    )
    handover = time.monotonic() - asked_at
    try:
        assert leaving.wait(10) == 0
    except subprocess.TimeoutExpired:
        leaving.send_signal(signal.SIGUSR1)  # its stacks land in its log, for whoever reads this failure
        await asyncio.sleep(1)
        raise
    print(f'{{"sigterm_handover_seconds": {handover:.2f}}}')
    # Well under the lease lifetime (10 s): the leases were released, not left to expire.
    assert handover < 6
    assert await redis.lrange(SIM_CONFLICTS_KEY, 0, -1) == []


async def _heartbeat_of(redis: Redis, pid: int) -> bool:
    members = await redis.zrange("managers:sessions", 0, -1)
    return any(_pid(member) == pid for member in members)
