"""The store-stream broker: taskiq-redis's stream broker, reading many store streams owned through leases.

Written against taskiq 0.13.0 and taskiq-redis 1.2.4 (pinned in pyproject.toml). What we change, and why
(shared/DESIGN.md, "What we know about taskiq-redis"):
- one XREADGROUP over every owned `messages:store-<id>` stream, under one stable consumer name per stream
  (`owner`): the lease holder is the only reader, so a new owner finds the previous owner's unacknowledged
  entries as its own pending entries and replays them first (`0`), before new ones (`>`). Stock taskiq only
  reclaims with XAUTOCLAIM after a read returned something, and its idle timeout steals long-running tasks;
- consumer groups are created when a store is taken (stores appear at runtime; taskiq creates groups only at
  its start-up);
- entries are yielded with their stream, so the receiver can keep per-chat order and acknowledge per stream.
Producers still use the stock `kick` (or `app.contracts.inbound_entry`, which writes the same format).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

from app.contracts import MESSAGES_GROUP, create_store_streams, messages_stream
from app.kit.batching import GroupCommit
from app.kit.redis import read_group

log = structlog.get_logger(__name__)

CONSUMER = "owner"
READ_COUNT = 500
READ_BLOCK_MS = 200


@dataclass(frozen=True)
class StreamEntry:
    store_id: uuid.UUID
    stream: str
    entry_id: str
    data: bytes


class StoreStreamBroker(RedisStreamBroker):
    def __init__(self, redis_url: str, redis: Redis, **kwargs: Any) -> None:
        super().__init__(redis_url, consumer_group_name=MESSAGES_GROUP, consumer_name=CONSUMER, **kwargs)
        self.redis = redis  # our client (decoded responses), shared with the rest of the worker
        self._reader = Redis.from_url(redis_url, decode_responses=True)  # the blocking read's own connection
        self._owned: set[uuid.UUID] = set()
        self._replayed: set[uuid.UUID] = set()
        self._acks: GroupCommit[StreamEntry, None] = GroupCommit(self._send_acks)

    async def startup(self) -> None:
        # No group declaration here: groups belong to stores and are created when a store is taken.
        self.is_worker_process = True

    async def shutdown(self) -> None:
        self._acks.close()
        await self._reader.aclose()

    async def own(self, store_id: uuid.UUID) -> None:
        await create_store_streams(self.redis, store_id)
        self._owned.add(store_id)

    def disown(self, store_id: uuid.UUID) -> None:
        self._owned.discard(store_id)
        self._replayed.discard(store_id)

    def owned(self) -> set[uuid.UUID]:
        return set(self._owned)

    async def entries(self) -> AsyncGenerator[list[StreamEntry]]:
        """Batches of entries from the owned streams: a store's pending entries first, then new ones.
        Survives Redis going away, and a Redis that came back empty (streams and groups are recreated)."""
        groups_missing = False
        while True:
            try:
                if groups_missing:
                    # Inside the try: right after a restart the pool's connections are stale and the first
                    # command on each fails; raised from the except clause below, that ended the reading for good.
                    for store_id in list(self._owned):
                        await create_store_streams(self.redis, store_id)
                    groups_missing = False
                async for batch in self._read():
                    yield batch
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning("consumer groups missing (Redis lost its data?); recreating them")
                    groups_missing = True
                    continue
                # Any other error reply (a Redis still loading, a stream deleted under a blocked read): the
                # reader must outlive it, or the worker stops handling while it looks alive.
                log.warning("reading the streams failed; retrying", error=str(exc))
                await asyncio.sleep(0.5)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("reading the streams failed; retrying", error=str(exc))
                await asyncio.sleep(0.5)

    async def _read(self) -> AsyncGenerator[list[StreamEntry]]:
        while True:
            if not self._owned:
                await asyncio.sleep(0.1)
                continue
            for store_id in [s for s in self._owned if s not in self._replayed]:
                pending = await read_group(
                    self._reader, MESSAGES_GROUP, CONSUMER, {messages_stream(store_id): "0"}, count=100_000
                )
                # Only once read: a replay cut short by a failed read is tried again, not skipped. (A store
                # dropped meanwhile is replayed when taken again.)
                if store_id in self._owned:
                    self._replayed.add(store_id)
                batch = self._to_entries(pending)
                if batch:
                    log.info("replaying unacknowledged entries", store_id=str(store_id), count=len(batch))
                    yield batch
            streams = {messages_stream(s): ">" for s in self._owned if s in self._replayed}
            if streams:
                batch = self._to_entries(
                    await read_group(
                        self._reader, MESSAGES_GROUP, CONSUMER, streams, count=READ_COUNT, block=READ_BLOCK_MS
                    )
                )
                if batch:
                    yield batch

    def _to_entries(self, reply: list[tuple[str, list[tuple[str, dict[str, str]]]]]) -> list[StreamEntry]:
        entries = []
        for stream, items in reply:
            store_id = uuid.UUID(stream.removeprefix("messages:store-"))
            if store_id not in self._owned:
                continue  # dropped while the read was in flight: the next owner will replay it
            for entry_id, fields in items:
                entries.append(StreamEntry(store_id, stream, entry_id, fields.get("data", "").encode()))
        return entries

    async def ack(self, entry: StreamEntry) -> None:
        """XACK the entry; returns once Redis acknowledged it (or raises). The acks asked for while one round
        trip is in flight go together in the next (one round trip each cost a third of the CPU)."""
        await self._acks.submit(entry)

    async def _send_acks(self, entries: list[StreamEntry]) -> list[None]:
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, MESSAGES_GROUP, *ids)
            await pipe.execute()
        return [None] * len(entries)

    async def listen(self) -> AsyncGenerator[AckableMessage]:
        """taskiq's interface, for tools that expect it; the worker itself uses `entries()` and lanes."""
        async for batch in self.entries():
            for entry in batch:

                async def ack(entry: StreamEntry = entry) -> None:
                    await self.ack(entry)

                yield AckableMessage(data=entry.data, ack=ack)

    async def trim(self, store_id: uuid.UUID) -> int:
        """Drop acknowledged entries: XTRIM MINID up to the oldest pending entry, never by length (a length
        cap drops unacknowledged entries)."""
        stream = messages_stream(store_id)
        summary: Any = await self.redis.xpending(stream, MESSAGES_GROUP)
        if summary and summary.get("pending"):
            keep_from = summary["min"]
        else:
            groups: Any = await self.redis.xinfo_groups(stream)
            group = next((g for g in groups if g["name"] == MESSAGES_GROUP), None)
            if group is None or group["last-delivered-id"] in ("0-0", None):
                return 0
            keep_from = group["last-delivered-id"]  # everything before it was delivered and acknowledged
        return int(await self.redis.xtrim(stream, minid=keep_from, approximate=False))
