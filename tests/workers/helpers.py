"""A whole pipeline in this process: session manager (simulator) + worker, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from app.config import Settings
from app.contracts import sim_inbound_stream, sim_outbound_stream
from app.kit.db import AsyncSessionMaker
from workers.handler import InboundHandler
from workers.service import Worker


def customer(n: int) -> str:
    return f"54911{n:08d}@s.whatsapp.net"


async def inject(redis: Redis, store_id: uuid.UUID, chat: str, text: str, wa_id: str | None = None) -> str:
    wa_id = wa_id or uuid.uuid4().hex[:24].upper()
    fields = {"id": wa_id, "from": chat, "name": "Cliente", "text": text, "ts": "1764300000000"}
    await redis.xadd(sim_inbound_stream(store_id), fields)  # type: ignore[arg-type]
    return wa_id


async def sent_by_chat(redis: Redis, store_ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, str], list[str]]:
    """What the simulated network received from each store, per chat, in the order it accepted it."""
    result: dict[tuple[uuid.UUID, str], list[str]] = defaultdict(list)
    for store_id in store_ids:
        for _, fields in await redis.xrange(sim_outbound_stream(store_id)):
            result[(store_id, fields["chat"])].append(fields["text"])
    return result


@asynccontextmanager
async def running_worker(
    settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
    *,
    handler: InboundHandler | None = None,
) -> AsyncIterator[Worker]:
    worker = Worker(settings, sessionmaker, redis, redis_url, handler=handler)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
