"""`POST /v1/stores/{id}/messages` through the whole API (auth, validation, one transaction, the outbox entry
after commit), in process over ASGI against real PostgreSQL and Redis. Prints JSON.

Phases, each `--requests` sends at `--concurrency` in flight, spread over `--chats` chats of one store:
- `read`: `GET /v1/stores/{id}/messages/{message_id}` (an authenticated read: the floor of any request here);
- `plain`: no Idempotency-Key (the baseline of the ratios);
- `keyed`: a new key each (the key's row claimed, then a purge check);
- `replayed`: the `keyed` requests again (each returns its message; nothing is written or queued);
- `one_key_race`: rounds of `--concurrency` requests with one key each (they wait at the unique constraint).
`ratios` compare each with `plain`'s throughput. The session manager does not run: this measures the API's
side of a send only (the outbox's sending is in bench/pipeline.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
import uuid
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy import update

from app.config import Environment, Settings, WhatsAppDriver
from app.contracts import outbox_stream
from app.kit.db import create_engine, create_sessionmaker, transaction
from app.kit.redis import create_redis
from app.main import create_app
from app.models import Store, StoreStatus
from bench.common import bench_servers


def _summary(samples: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "requests": len(ordered),
        "per_second": round(len(ordered) / seconds, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


async def _phase(
    http: AsyncClient,
    url: str,
    bodies: list[tuple[dict[str, Any], dict[str, str]]],
    concurrency: int,
    *,
    method: str = "POST",
) -> tuple[dict[str, float], list[str]]:
    times: list[float] = []
    ids: list[str] = [""] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(bodies)):
        queue.put_nowait(index)

    async def client() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            body, headers = bodies[index]
            began = time.perf_counter()
            if method == "GET":
                response = await http.get(url)
            else:
                response = await http.post(url, json=body, headers=headers)
            times.append(time.perf_counter() - began)
            assert response.status_code == (200 if method == "GET" else 202), response.text
            ids[index] = response.json()["id"]

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return _summary(times, time.perf_counter() - began), ids


async def run(
    database_url: str, redis_url: str, requests: int, concurrency: int, chats: int
) -> dict[str, Any]:
    settings = Settings(
        env=Environment.testing,
        database_url=database_url,
        redis_url=redis_url,
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
        whatsapp_driver=WhatsAppDriver.simulator,
    )
    app = create_app(settings)
    redis = create_redis(redis_url)
    await redis.flushdb()
    engine = create_engine(database_url, pool_size=2)
    async with app.router.lifespan_context(app):
        anonymous = AsyncClient(transport=ASGITransport(app=app), base_url="http://bench")
        signup = await anonymous.post(
            "/v1/auth/signup",
            json={
                "email": f"{uuid.uuid4().hex}@example.com",
                "password": "a long passphrase",
                "business_name": "B",
            },
        )
        token = signup.json()["access_token"]
        http = AsyncClient(
            transport=ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        )
        store_id = (await http.post("/v1/stores", json={"name": "Bench"})).json()["id"]
        async with transaction(create_sessionmaker(engine)) as session:
            await session.execute(
                update(Store)
                .where(Store.id == uuid.UUID(store_id))
                .values(status=StoreStatus.connected.value)
            )
        url = f"/v1/stores/{store_id}/messages"

        def body(i: int) -> dict[str, Any]:
            return {"to": f"+54911{i % chats:08d}", "text": f"mensaje {i}", "pause_bot": i % 2 == 0}

        warm = [(body(i), {}) for i in range(min(200, requests))]
        _, warm_ids = await _phase(http, url, warm, concurrency)
        read, _ = await _phase(http, f"{url}/{warm_ids[0]}", [({}, {})] * requests, concurrency, method="GET")
        plain, _ = await _phase(http, url, [(body(i), {}) for i in range(requests)], concurrency)
        keyed_bodies = [(body(i), {"Idempotency-Key": f"k-{i}"}) for i in range(requests)]
        keyed, first_ids = await _phase(http, url, keyed_bodies, concurrency)
        replayed, replay_ids = await _phase(http, url, keyed_bodies, concurrency)
        assert replay_ids == first_ids  # the same messages
        rounds = max(1, requests // concurrency)
        race_bodies = [
            (body(r), {"Idempotency-Key": f"race-{r}"}) for r in range(rounds) for _ in range(concurrency)
        ]
        race, race_ids = await _phase(http, url, race_bodies, concurrency)
        assert len(set(race_ids)) == rounds  # one message per key
        queued = await redis.xlen(outbox_stream(store_id))
        expected = len(warm) + 2 * requests + rounds
        assert queued == expected, (queued, expected)
        await http.aclose()
        await anonymous.aclose()
    await redis.flushdb()
    await redis.aclose()
    await engine.dispose()
    base = plain["per_second"]
    return {
        "bench": "send",
        "settings": {
            "requests": requests,
            "concurrency": concurrency,
            "chats": chats,
            "transport": "ASGI in process",
        },
        "read": read,
        "plain": plain,
        "keyed": keyed,
        "replayed": replayed,
        "one_key_race": {**race, "keys": rounds},
        "ratios": {
            "plain_vs_read": round(base / read["per_second"], 2),
            "keyed_vs_plain": round(keyed["per_second"] / base, 2),
            "replayed_vs_plain": round(replayed["per_second"] / base, 2),
            "one_key_race_vs_plain": round(race["per_second"] / base, 2),
        },
        "outbox_entries": queued,
    }


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would be measured too
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--chats", type=int, default=200)
    args = parser.parse_args()
    with bench_servers("mostrador_bench_send") as (database_url, redis_url):
        result = asyncio.run(run(database_url, redis_url, args.requests, args.concurrency, args.chats))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
