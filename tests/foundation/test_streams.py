"""The stream consumer (app/kit/streams.py) on a real Redis: replay page by page, NOGROUP, disowned streams, trim."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from app.kit.streams import CONSUMER, StreamConsumer, StreamEntry
from tests.sessions.helpers import wait_for

GROUP = "test-group"


def stream_of(store_id: uuid.UUID) -> str:
    return f"test:store-{store_id}"


async def add(redis: Redis, store_id: uuid.UUID, n: int, prefix: str) -> list[str]:
    return [await redis.xadd(stream_of(store_id), {"n": f"{prefix}{i}"}) for i in range(n)]


async def leave_pending(redis: Redis, store_id: uuid.UUID) -> None:
    """A previous owner read everything (under the one consumer name) and died before acknowledging."""
    await redis.xreadgroup(GROUP, CONSUMER, {stream_of(store_id): ">"}, count=100_000)


class Reader:
    """Runs `consumer.batches()` in a task and collects what it yields."""

    def __init__(self, consumer: StreamConsumer) -> None:
        self.consumer = consumer
        self.batches: list[list[StreamEntry]] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for batch in self.consumer.batches():
            self.batches.append(batch)

    def entries(self) -> list[StreamEntry]:
        return [entry for batch in self.batches for entry in batch]

    def values(self) -> list[str]:
        return [entry.fields["n"] for entry in self.entries()]

    async def wait_count(self, n: int) -> list[str]:
        async def enough() -> bool:
            return len(self.entries()) >= n

        await wait_for(enough, timeout=10, what=f"{n} entries read")
        return self.values()


@contextlib.asynccontextmanager
async def reading(consumer: StreamConsumer) -> AsyncIterator[Reader]:
    reader = Reader(consumer)
    reader.task = asyncio.create_task(reader._run())
    try:
        yield reader
    finally:
        reader.task.cancel()
        await asyncio.gather(reader.task, return_exceptions=True)
        consumer.close()


@contextlib.asynccontextmanager
async def named_client(redis_url: str) -> AsyncIterator[tuple[Redis, str]]:
    """A client whose connections carry a name of their own: CLIENT LIST lists every client of the server
    (other databases, other processes), and only ours may say that our read is blocked."""
    name = f"test-consumer-{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_url, decode_responses=True, client_name=name)
    try:
        yield client, name
    finally:
        await client.aclose()


async def blocked_in_read(redis: Redis, name: str) -> bool:
    clients: Any = await redis.client_list()
    return any(client.get("name") == name and client.get("cmd") == "xreadgroup" for client in clients)


async def test_more_pending_entries_than_one_page_are_all_replayed_in_order_then_new_ones(
    redis: Redis,
) -> None:
    store_id = uuid.uuid4()
    await redis.xgroup_create(stream_of(store_id), GROUP, id="0", mkstream=True)
    await add(redis, store_id, 25, "old")  # 2.5 pages
    await leave_pending(redis, store_id)
    await add(redis, store_id, 3, "new")  # added after the previous owner's last read: never delivered
    consumer = StreamConsumer(redis, GROUP, stream_of, page=10)
    await consumer.own(store_id)
    async with reading(consumer) as reader:
        values = await reader.wait_count(28)
        assert values == [f"old{i}" for i in range(25)] + [f"new{i}" for i in range(3)]
        assert [len(batch) for batch in reader.batches[:3]] == [10, 10, 5]  # page by page
        # Replay over: what arrives now comes from the one blocking read.
        await add(redis, store_id, 2, "later")
        assert (await reader.wait_count(30))[28:] == ["later0", "later1"]
        await consumer.ack_many(reader.entries())
    assert (await redis.xpending(stream_of(store_id), GROUP))["pending"] == 0


async def test_owning_a_stream_creates_its_group_and_reads_what_was_added_before(redis: Redis) -> None:
    store_id = uuid.uuid4()
    await add(redis, store_id, 3, "early")  # the producer came first: a stream without a group
    consumer = StreamConsumer(redis, GROUP, stream_of)
    await consumer.own(store_id)
    await consumer.own(store_id)  # taken twice (BUSYGROUP): harmless
    async with reading(consumer) as reader:
        assert await reader.wait_count(3) == ["early0", "early1", "early2"]


async def test_a_deleted_stream_gets_its_group_back_and_reading_goes_on(redis: Redis) -> None:
    store_id, other = uuid.uuid4(), uuid.uuid4()
    consumer = StreamConsumer(redis, GROUP, stream_of, block_ms=50)
    await consumer.own(store_id)
    await consumer.own(other)
    async with reading(consumer) as reader:
        await add(redis, store_id, 1, "before")
        await reader.wait_count(1)
        await redis.delete(stream_of(store_id))  # like a Redis that lost its data
        await add(redis, store_id, 1, "after")  # recreates the stream, without a group: NOGROUP
        await add(redis, other, 1, "other")
        values = await reader.wait_count(3)
        assert sorted(values[1:]) == ["after0", "other0"]
    groups: Any = await redis.xinfo_groups(stream_of(store_id))
    assert [g["name"] for g in groups] == [GROUP]


async def test_entries_of_a_stream_disowned_mid_read_are_left_for_the_next_owner(
    redis: Redis, redis_url: str
) -> None:
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    async with named_client(redis_url) as (own_redis, name):
        consumer = StreamConsumer(own_redis, GROUP, stream_of, block_ms=5000)
        await consumer.own(kept)
        await consumer.own(dropped)
        await _disowned_mid_read(redis, consumer, name, kept, dropped)


async def _disowned_mid_read(
    redis: Redis, consumer: StreamConsumer, name: str, kept: uuid.UUID, dropped: uuid.UUID
) -> None:
    async with reading(consumer) as reader:
        await wait_for(lambda: blocked_in_read(redis, name), what="the blocking read over both streams")
        consumer.disown(dropped)  # the lease is lost while the read is in flight
        await add(redis, dropped, 1, "dropped")
        await add(redis, kept, 1, "first")
        # The read in flight returned with `dropped0` (delivered to our consumer name by Redis): discarded.
        await reader.wait_count(1)
        await add(redis, kept, 1, "second")
        await reader.wait_count(2)
        assert reader.values() == ["first0", "second0"]
    assert (await redis.xpending(stream_of(dropped), GROUP))["pending"] == 1
    assert not consumer.owns(dropped)


async def test_trim_keeps_every_unacknowledged_entry(redis: Redis) -> None:
    store_id = uuid.uuid4()
    consumer = StreamConsumer(redis, GROUP, stream_of)
    await consumer.own(store_id)
    ids = await add(redis, store_id, 10, "m")
    async with reading(consumer) as reader:
        await reader.wait_count(10)
        entries = reader.entries()
        await consumer.ack_many(entries[:4] + entries[6:8])  # 4, 5, 8 and 9 stay unacknowledged
        assert await consumer.trim(store_id) == 4  # only what precedes the oldest unacknowledged entry
    remaining = [entry_id for entry_id, _ in await redis.xrange(stream_of(store_id))]
    assert remaining == ids[4:]
    pending: Any = await redis.xpending_range(stream_of(store_id), GROUP, min="-", max="+", count=100)
    assert [p["message_id"] for p in pending] == [ids[4], ids[5], ids[8], ids[9]]


async def test_a_stream_disowned_and_owned_again_mid_read_delivers_each_entry_once(
    redis: Redis, redis_url: str
) -> None:
    store_id = uuid.uuid4()
    async with named_client(redis_url) as (own_redis, name):
        consumer = StreamConsumer(own_redis, GROUP, stream_of, block_ms=5000)
        await consumer.own(store_id)
        await _owned_again_mid_read(redis, consumer, name, store_id)


async def _owned_again_mid_read(
    redis: Redis, consumer: StreamConsumer, name: str, store_id: uuid.UUID
) -> None:
    async with reading(consumer) as reader:
        await wait_for(lambda: blocked_in_read(redis, name), what="the blocking read")
        consumer.disown(store_id)  # lease lost and taken again while the read is in flight
        await consumer.own(store_id)
        await add(redis, store_id, 1, "x")  # returned by the old read: left to the new ownership's replay
        await reader.wait_count(1)
        await add(redis, store_id, 1, "y")
        await reader.wait_count(2)
        assert reader.values() == ["x0", "y0"]


async def test_a_store_handed_over_mid_read_loses_nothing_to_the_old_owners_read(
    redis: Redis, redis_url: str
) -> None:
    """Two processes: the old owner disowns the store while its blocking read names the stream, and settles
    before it releases the lease; then the new owner replays and waits on its own read. An entry added then
    must reach the new owner: were the old read still blocked, Redis would give it the entry (the group's first
    blocked reader), which it discards: pending and unseen until the store changes hands again."""
    store_id = uuid.uuid4()
    async with (
        named_client(redis_url) as (old_redis, old_name),
        named_client(redis_url) as (new_redis, new_name),
    ):
        old = StreamConsumer(old_redis, GROUP, stream_of, block_ms=2000)
        await old.own(store_id)
        async with reading(old):
            await wait_for(lambda: blocked(redis, old_name), what="the old owner's blocking read")
            old.disown(store_id)
            await old.settle(store_id)
            assert not await blocked(redis, old_name)
            new = StreamConsumer(new_redis, GROUP, stream_of, block_ms=2000)
            await new.own(store_id)  # the lease changed hands
            async with reading(new) as new_reader:
                await wait_for(lambda: blocked(redis, new_name), what="the new owner's blocking read")
                await add(redis, store_id, 1, "m")
                assert await new_reader.wait_count(1) == ["m0"]


async def blocked(redis: Redis, name: str) -> bool:
    """Whether the named client is blocked in a command now (CLIENT LIST's `cmd` is the last one run)."""
    clients: Any = await redis.client_list()
    return any(client.get("name") == name and "b" in client.get("flags", "") for client in clients)
