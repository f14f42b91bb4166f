"""Media: does downloading inbound media slow the intake of messages, and how fast are uploads and downloads?

In one process, on real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, or embedded ones) with local-file storage:
1. intake: N customers' text messages, then N image messages (64 KB each) through the simulator and a session
   manager; the time until every row is committed (queued for the bot), and for the images the time until every
   file is stored. `intake_ratio_media_vs_text` near 1 means the downloads do not hold the intake.
2. the API in-process (ASGI): uploads of 1 MB images, full downloads of a 1 MB file, 64 KB Range requests;
   per-request latency (p50/p99) and MB/s.

    .venv/bin/python -m bench.media            # N = 500
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.config import Environment, Settings, WhatsAppDriver
from app.contracts import SIM_MEDIA_TTL_SECONDS, phone_to_jid, sim_inbound_stream, sim_media_key
from app.kit.db import create_engine, create_sessionmaker, transaction
from app.kit.redis import create_redis
from app.main import create_app
from app.models import DesiredState, Message, Store, Tenant
from bench.common import bench_servers
from sessions.drivers.simulator import SimulatorDriver
from sessions.manager import SessionManager

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
FAST = {
    "sending": {"typing": False, "jitter_ms": 0, "per_store_per_second": 1000, "per_chat_per_minute": 1000}
}


def jpeg(size: int) -> bytes:
    return JPEG_HEAD + os.urandom(size - len(JPEG_HEAD))


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


async def _wait(probe: Any, timeout: float = 300) -> float:
    started = time.monotonic()
    while not await probe():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the benchmark did not finish")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def intake(settings: Settings, count: int) -> dict[str, Any]:
    assert settings.database_url and settings.redis_url
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    redis = create_redis(settings.redis_url)
    async with transaction(sessionmaker) as session:
        tenant = Tenant(name="bench")
        session.add(tenant)
        await session.flush()
        store = Store(
            tenant_id=tenant.id, name="bench", desired_state=DesiredState.linked.value, settings=FAST,
            device_jid="5493400000001:7@s.whatsapp.net", phone_number="+5493400000001",
        )  # fmt: skip
        session.add(store)
        await session.flush()
        store_id = store.id
    await redis.set(
        "sim:device:5493400000001:7@s.whatsapp.net",
        json.dumps({"store_id": str(store_id), "phone": "+5493400000001"}),
    )
    manager = SessionManager(
        settings, SimulatorDriver(settings, settings.redis_url), sessionmaker, redis, settings.redis_url
    )
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))

    async def count_rows(kind: str, state: str | None = None) -> int:
        async with sessionmaker() as session:
            query = select(func.count()).where(Message.store_id == store_id, Message.type == kind)
            if state is not None:
                query = query.where(Message.media["state"].astext == state)
            return int((await session.execute(query)).scalar_one())

    async def connected() -> bool:
        async with sessionmaker() as session:
            return (await session.get(Store, store_id)).status == "connected"  # type: ignore[union-attr]

    await _wait(connected)
    image = base64.b64encode(jpeg(64 * 1024)).decode()

    # The customers' phones upload the files before the clock starts: that is WhatsApp's work, not ours.
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.set(sim_media_key(f"bench-{n}"), image, ex=SIM_MEDIA_TTL_SECONDS)
        await pipe.execute()

    async def inject(kind: str) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(count):
                wa_id = f"{kind}-{n}-{uuid.uuid4().hex[:8]}"
                fields = {"id": wa_id, "from": phone_to_jid(f"+54911{n % 50:08d}"), "name": "", "text": "hola",
                          "ts": str(int(time.time() * 1000))}  # fmt: skip
                if kind == "image":
                    fields.update(
                        type="image", mime="image/jpeg", media=f"bench-{n}", text="", size=str(64 * 1024)
                    )
                pipe.xadd(sim_inbound_stream(store_id), fields)  # type: ignore[arg-type]
            await pipe.execute()

    started = time.monotonic()
    await inject("text")
    text_seconds = time.monotonic() - started + await _wait(lambda: _equals(count_rows("text"), count))
    started = time.monotonic()
    await inject("image")
    image_rows = time.monotonic() - started + await _wait(lambda: _equals(count_rows("image"), count))
    stored = image_rows + await _wait(lambda: _equals(count_rows("image", "stored"), count))
    stop.set()
    await asyncio.wait_for(task, 60)
    await redis.aclose()
    await engine.dispose()
    return {
        "messages": count,
        "image_bytes": 64 * 1024,
        "text_rows_committed_seconds": round(text_seconds, 3),
        "image_rows_committed_seconds": round(image_rows, 3),
        "intake_ratio_media_vs_text": round(image_rows / text_seconds, 2),
        "images_stored_seconds": round(stored, 3),
        "downloads_per_second": round(count / stored, 1),
    }


async def _equals(value: Any, expected: int) -> bool:
    return int(await value) >= expected


async def api(settings: Settings) -> dict[str, Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://bench")
        signup = await http.post(
            "/v1/auth/signup",
            json={
                "email": f"{uuid.uuid4().hex[:8]}@example.com",
                "password": "a long passphrase",
                "business_name": "b",
            },
        )
        http.headers["Authorization"] = f"Bearer {signup.json()['access_token']}"
        big = jpeg(1024 * 1024)
        uploads: list[float] = []
        for _ in range(30):
            started = time.perf_counter()
            response = await http.post("/v1/uploads", content=big, headers={"Content-Type": "image/jpeg"})
            uploads.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
        # A stored message to download: an upload's file under a message row (what a send writes).
        from app.media.storage import LocalMediaStorage

        storage = LocalMediaStorage(settings.media_dir)
        assert settings.database_url
        engine = create_engine(settings.database_url)
        sessionmaker = create_sessionmaker(engine)
        tenant_id = uuid.UUID((await http.get("/v1/users/me")).json()["tenant"]["id"])
        async with transaction(sessionmaker) as session:
            from app.models import Conversation

            store = Store(tenant_id=tenant_id, name="dl", settings={})
            session.add(store)
            await session.flush()
            chat = Conversation(store_id=store.id, chat_jid="1@s.whatsapp.net", bot_state={})
            session.add(chat)
            await session.flush()
            key = f"stores/{store.id}/out/bench"
            await storage.put(key, big, content_type="image/jpeg")
            media = {"state": "stored", "key": key, "mimetype": "image/jpeg"}
            message = Message(
                store_id=store.id, conversation_id=chat.id, direction="out", type="image", status="sent",
                media=media,
            )  # fmt: skip
            session.add(message)
            await session.flush()
            url = f"/v1/stores/{store.id}/messages/{message.id}/media"
        full: list[float] = []
        for _ in range(50):
            started = time.perf_counter()
            response = await http.get(url)
            full.append(time.perf_counter() - started)
            assert response.content == big
        ranges: list[float] = []
        for n in range(200):
            start = (n * 4099) % (len(big) - 65536)
            started = time.perf_counter()
            response = await http.get(url, headers={"Range": f"bytes={start}-{start + 65535}"})
            ranges.append(time.perf_counter() - started)
            assert response.status_code == 206 and len(response.content) == 65536
        await http.aclose()
        await engine.dispose()
    return {
        "upload_1mb": {**_ms(uploads), "mb_per_second": round(len(uploads) / sum(uploads), 1)},
        "download_1mb": {**_ms(full), "mb_per_second": round(len(full) / sum(full), 1)},
        "range_64kb": _ms(ranges),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    with bench_servers() as (database_url, redis_url), tempfile.TemporaryDirectory() as data:
        settings = Settings(
            env=Environment.testing, database_url=database_url, redis_url=redis_url,
            secret_key="bench-secret-key-that-is-long-enough-0123456789", whatsapp_driver=WhatsAppDriver.simulator,
            data_dir=Path(data), sim_receipts=False, log_level="WARNING",
        )  # fmt: skip
        report = {
            "benchmark": "media",
            "storage": "local",
            "intake": asyncio.run(intake(settings, args.messages)),
            "api": asyncio.run(api(settings)),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
