"""A whole pipeline in this process: session manager (simulator) + worker, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select

from app.config import Settings
from app.contracts import sim_inbound_stream, sim_outbound_stream
from app.kit.db import AsyncSessionMaker
from app.models import Message
from bench.harness import Outcome, as_dict, check
from sessions.outbound import INTERRUPTED
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


async def check_after_interruptions(
    redis: Redis, sessionmaker: AsyncSessionMaker, stores: list[uuid.UUID], chats: int, per_chat: int
) -> tuple[Outcome, int, dict[str, Any]]:
    """The harness's check after a crash or an outage: nothing duplicated, reordered or left unhandled. Returns
    the outcome, how many replies were interrupted mid-send (marked failed, never sent again: they may have
    reached the customer) and a report of both, for the caller's own assertions on what may be missing."""
    outcome = await check(redis, sessionmaker, stores, chats, per_chat)
    async with sessionmaker() as session:
        interrupted = int(
            await session.scalar(
                select(func.count()).where(Message.direction == "out", Message.error == INTERRUPTED)
            )
            or 0
        )
    report = {**as_dict(outcome), "interrupted": interrupted}
    assert outcome.duplicates == 0 and outcome.order_violations == 0, report
    assert outcome.replies_per_inbound_over_one == 0 and outcome.inbound_not_handled == 0, report
    return outcome, interrupted, report
