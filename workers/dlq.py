"""The dead-letter streams (`messages:store-<id>:dlq`): list what failed, and replay it once fixed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.contracts import messages_dlq, messages_stream
from app.kit.db import AsyncSessionMaker, transaction
from workers.repository import WorkerRepository


@dataclass(frozen=True)
class DeadLetter:
    id: str
    message_id: str
    error: str
    failed_at: str
    data: str


async def list_dead_letters(redis: Redis, store_id: uuid.UUID, *, limit: int = 100) -> list[DeadLetter]:
    entries: Any = await redis.xrange(messages_dlq(store_id), count=limit)
    return [
        DeadLetter(
            id=entry_id,
            message_id=fields.get("message_id", ""),
            error=fields.get("error", ""),
            failed_at=fields.get("failed_at", ""),
            data=fields.get("data", ""),
        )
        for entry_id, fields in entries
    ]


async def replay_dead_letters(
    redis: Redis, sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, entry_ids: list[str] | None = None
) -> int:
    """Put dead letters back on the store's stream (all of them, or the given ones), oldest first. The message
    row goes back to `queued` first, so the handler treats it as new work."""
    replayed = 0
    for letter in await list_dead_letters(redis, store_id, limit=100_000):
        if entry_ids and letter.id not in entry_ids:
            continue
        if letter.message_id:
            async with transaction(sessionmaker) as session:
                await WorkerRepository(session).requeue(uuid.UUID(letter.message_id))
        await redis.xadd(messages_stream(store_id), {"data": letter.data})
        await redis.xdel(messages_dlq(store_id), letter.id)
        replayed += 1
    return replayed
