"""Each process on its own: readiness through PostgreSQL and Redis outages (servers started by the test), and
SIGTERM: stop taking work, finish what is in flight within MOSTRADOR_SHUTDOWN_GRACE_SECONDS, release the
leases, exit 0. (The session manager's hand-over on SIGTERM: tests/sessions/test_replicas.py; the
all-in-one's: tests/ops/test_allinone.py.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from app.contracts import worker_lease_key
from app.kit.db import AsyncSessionMaker
from app.kit.migrations import upgrade_async
from bench.harness import (
    Processes,
    as_dict,
    check,
    create_stores,
    inject,
    settled,
    wait_connected,
    wait_replies,
)
from mostrador.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.ops.helpers import scrape, start, value, wait_status
from tests.sessions.helpers import wait_for
from tests.support import PASSWORD

pytestmark = pytest.mark.slow

GRACE = 4


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="mostrador-ops-"))
    os.chmod(root, 0o755)  # as root, the embedded PostgreSQL runs unprivileged
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MOSTRADOR_ENV": "testing",
        "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
        "MOSTRADOR_SECRET_KEY": "ops-test-secret-key-0123456789-abcdefghijklmnop",
        "MOSTRADOR_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        **extra,
    }


def _stop(proc: object, bound: float) -> float:
    """SIGTERM, then the exit code must be 0 within `bound` seconds; returns how long it took."""
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(bound + 30) == 0
    took = time.monotonic() - asked
    assert took < bound, took
    return took


async def test_readiness_follows_postgres_and_redis_outages(scratch: Path) -> None:
    postgres, redis_server = EmbeddedPostgres(scratch / "pg"), EmbeddedRedis(scratch)
    database_url = make_url(postgres.start()).render_as_string(hide_password=False)
    redis_url = redis_server.start()
    await upgrade_async(database_url)
    ports = {"sessions": free_port(), "worker": free_port()}
    procs = {
        name: start(
            scratch / f"{name}.log", _env(database_url, redis_url, MOSTRADOR_OPS_PORT=str(port)), name
        )
        for name, port in ports.items()
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        for name, url in urls.items():
            await wait_status(f"{url}/readyz", 200, proc=procs[name])

        for server, check_name in ((redis_server, "redis"), (postgres, "postgres")):
            port = server.port
            server.stop()
            for url in urls.values():
                body = (await wait_status(f"{url}/readyz", 503, timeout=30)).json()
                assert body["error"]["code"] == "not_ready"
                assert body["error"]["details"][check_name] != "ok", body
                async with httpx.AsyncClient() as http:  # alive all the same: no restart wanted
                    assert (await http.get(f"{url}/healthz")).status_code == 200
            server.start(port=port)
            for url in urls.values():
                await wait_status(f"{url}/readyz", 200, timeout=60)
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited during the outages"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                _stop(proc, GRACE + 10)
        redis_server.stop()
        postgres.stop()


async def test_api_sigterm_ends_open_event_streams_within_the_grace(
    database_url: str, redis_url: str, tmp_path: Path, engine: object, redis: Redis
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(
        tmp_path / "api.log",
        _env(database_url, redis_url, MOSTRADOR_PORT=str(port), MOSTRADOR_OPS_PORT="0"),
        "api",
    )
    try:
        await wait_status(f"{base}/readyz", 200, proc=proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            signup = await http.post(
                "/v1/auth/signup",
                json={"email": "sigterm@example.com", "password": PASSWORD, "business_name": "Kiosco"},
            )
            headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
            store_id = (await http.post("/v1/stores", json={"name": "Kiosco"}, headers=headers)).json()["id"]
            async with http.stream("GET", f"/v1/stores/{store_id}/events", headers=headers) as events:
                assert events.status_code == 200
                lines = events.aiter_lines()
                first = await anext(lines)  # the stream is open and serving: a request in flight
                assert first
                took = await asyncio.to_thread(_stop, proc, GRACE + 5)
                with pytest.raises((httpx.HTTPError, StopAsyncIteration)):
                    while True:  # the server ended the stream (cleanly or by closing the connection)
                        await asyncio.wait_for(anext(lines), 5)
        print(f'{{"api_sigterm_seconds_with_an_open_stream": {took:.2f}}}')
        scraped_log = (tmp_path / "api.log").read_text()
        assert "Traceback" not in scraped_log, scraped_log[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_worker_sigterm_mid_load_finishes_in_flight_releases_leases_and_exits_0(
    database_url: str, redis_url: str, tmp_path: Path, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    ops = free_port()
    processes = Processes(
        database_url, redis_url, tmp_path / "logs", {"MOSTRADOR_SHUTDOWN_GRACE_SECONDS": str(GRACE)}
    )
    stores_n, chats, per_chat = 6, 10, 15
    try:
        stores = await create_stores(sessionmaker, redis, stores_n)
        processes.start("sessions", "sessions")
        processes.env_overrides["MOSTRADOR_OPS_PORT"] = str(ops)
        leaving = processes.start("worker-0", "worker")
        processes.env_overrides["MOSTRADOR_OPS_PORT"] = "0"
        await wait_connected(sessionmaker, stores)

        async def owns_all() -> bool:
            owners = await redis.mget([worker_lease_key(s) for s in stores])
            return all(o and int(o.split(":")[1]) == leaving.pid for o in owners)

        await wait_for(owns_all, timeout=60, interval=0.2, what="the worker owning every store")
        total = stores_n * chats * per_chat
        await inject(redis, stores, chats, per_chat)
        await wait_replies(redis, stores, total // 5, timeout=120)
        before = await scrape(f"http://127.0.0.1:{ops}")
        assert value(before, "mostrador_messages_total", direction="in", status="handled") > 0

        took = await asyncio.to_thread(_stop, leaving, GRACE + 5)
        # Released on the way out, not left to expire: nobody holds the stores now.
        assert await redis.mget([worker_lease_key(s) for s in stores]) == [None] * stores_n
        print(f'{{"worker_sigterm_seconds_mid_load": {took:.2f}}}')

        processes.start("worker-1", "worker")  # the next owner finishes the rest, nothing twice
        seen = await wait_replies(redis, stores, total, timeout=180)
        await wait_for(lambda: settled(redis, sessionmaker, stores), timeout=60, what="nothing left to send")
        outcome = await check(redis, sessionmaker, stores, chats, per_chat)
        assert outcome.clean and seen == total and outcome.inbound_not_handled == 0, as_dict(outcome)
    finally:
        processes.stop_all()
