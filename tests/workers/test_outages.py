"""Servers lost in the middle of a load: a Redis that comes back empty, a PostgreSQL that restarts.

PostgreSQL is the record and Redis the work queue (docs/architecture.md, invariant 1): whatever Redis loses, the
the relay puts back from PostgreSQL; while PostgreSQL is away, inbound messages stay unacknowledged on the
(simulated) WhatsApp network, which delivers them again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from app.kit.db import create_engine, create_sessionmaker
from app.kit.migrations import upgrade_async
from app.kit.redis import create_redis
from bench.harness import (
    Processes,
    as_dict,
    check,
    create_stores,
    inject,
    inject_steady,
    wait_connected,
    wait_replies,
)
from mostrador.embedded import EmbeddedPostgres, EmbeddedRedis

pytestmark = pytest.mark.slow

STORES, CHATS, PER_CHAT = 5, 10, 12
FAST_RECOVERY = {
    "MOSTRADOR_WORKER_SWEEP_AFTER_SECONDS": "3",
    "MOSTRADOR_SESSIONS_LEASE_TTL_SECONDS": "4",
    "MOSTRADOR_WORKER_LEASE_TTL_SECONDS": "4",
}


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="mostrador-outage-"))
    os.chmod(root, 0o755)  # as root, the embedded PostgreSQL runs unprivileged
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_redis_restarted_with_its_data_lost(
    database_url: str, redis_url: str, redis: Redis, sessionmaker: object, scratch: Path, tmp_path: Path
) -> None:
    # Our queue gets a Redis of its own that we can wipe; the simulated network stays on the test Redis.
    queue_server = EmbeddedRedis(scratch)
    queue_url = queue_server.start()
    queue = create_redis(queue_url)
    processes = Processes(
        database_url, queue_url, tmp_path / "logs", {**FAST_RECOVERY, "MOSTRADOR_SIM_REDIS_URL": redis_url}
    )
    load: asyncio.Task[dict[tuple[str, str], float]] | None = None
    try:
        stores = await create_stores(sessionmaker, redis, STORES, queue_redis=queue)  # type: ignore[arg-type]
        processes.start("sessions", "sessions")
        processes.start("worker", "worker")
        await wait_connected(sessionmaker, stores)  # type: ignore[arg-type]
        await asyncio.sleep(2)
        total = STORES * CHATS * PER_CHAT
        # A steady load (10 s), so that Redis goes away in the middle of it: messages keep arriving while it is
        # away and after it is back, besides those in flight. (Injected all at once, the load was mostly handled
        # before the kill, and the recovery hardly tested.)
        load = asyncio.create_task(inject_steady(redis, stores, CHATS, PER_CHAT, rate=60))
        await wait_replies(redis, stores, total // 4, timeout=120)

        queue_server.proc.kill()  # type: ignore[union-attr]  # gone, with everything it held
        queue_server.proc.wait()  # type: ignore[union-attr]
        port = queue_server.port
        queue_server.stop()
        shutil.rmtree(queue_server.dir)
        await asyncio.sleep(2)
        queue_server.start(port=port)  # back, empty
        await load

        seen = await wait_replies(redis, stores, total, timeout=180)
        await asyncio.sleep(3)
        outcome = await check(redis, sessionmaker, stores, CHATS, PER_CHAT)  # type: ignore[arg-type]
        assert outcome.clean and seen == total and outcome.inbound_not_handled == 0, as_dict(outcome)
    finally:
        if load is not None:
            load.cancel()
        processes.stop_all()
        await queue.aclose()
        queue_server.stop()


async def test_postgres_restarted_mid_load(redis: Redis, redis_url: str, scratch: Path) -> None:
    postgres = EmbeddedPostgres(scratch / "pg")
    server_url = postgres.start()
    port = postgres.port
    database_url = make_url(server_url).render_as_string(hide_password=False)
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    processes = Processes(database_url, redis_url, scratch / "logs")
    try:
        stores = await create_stores(sessionmaker, redis, STORES)
        processes.start("sessions", "sessions")
        processes.start("worker", "worker")
        await wait_connected(sessionmaker, stores)
        await asyncio.sleep(2)
        total = STORES * CHATS * PER_CHAT
        await inject(redis, stores, CHATS, PER_CHAT)
        await wait_replies(redis, stores, total // 4, timeout=120)

        await engine.dispose()
        postgres.stop()  # fast shutdown: every connection is cut
        await asyncio.sleep(3)
        postgres.start(port=port)

        seen = await wait_replies(redis, stores, total, timeout=180)
        await asyncio.sleep(3)
        outcome = await check(redis, sessionmaker, stores, CHATS, PER_CHAT)
        assert outcome.clean and seen == total, as_dict(outcome)
    finally:
        processes.stop_all()
        await engine.dispose()
        postgres.stop()
