"""Every process on a Redis Cluster (`redis+cluster://`): a local 3-master cluster started by the test.

The pipeline (session manager with the simulator, worker) runs on the cluster alone (the queue and the simulated
network both), and the harness's order and no-loss checks must pass, also with a master killed and restarted in
the middle of a load (the simulated network then on a single Redis, as in test_outages).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from sqlalchemy import func, select

from app import contracts
from app.auth.errors import TooManyAttempts
from app.auth.ratelimit import count_login_attempt
from app.contracts import (
    MESSAGES_GROUP,
    STORES_CHANGED_CHANNEL,
    messages_stream,
    outbox_stream,
    worker_lease_key,
)
from app.kit.db import AsyncSessionMaker
from app.kit.leases import Leases
from app.kit.redis import create_redis, group_by_slot, is_cluster
from app.kit.streams import StreamConsumer
from app.models import Message
from bench.harness import (
    Processes,
    create_stores,
    inject_steady,
    settled,
    wait_connected,
    wait_replies,
)
from tests.redis_cluster import LocalCluster, redis_server_binary
from tests.sessions.helpers import wait_for
from tests.workers.helpers import check_after_interruptions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        redis_server_binary() is None, reason="no redis-server binary (Debian: apt-get install redis-server)"
    ),
]

STORES, CHATS, PER_CHAT = 6, 8, 10
FAST_RECOVERY = {
    "MOSTRADOR_WORKER_SWEEP_AFTER_SECONDS": "3",
    "MOSTRADOR_SESSIONS_LEASE_TTL_SECONDS": "4",
    "MOSTRADOR_WORKER_LEASE_TTL_SECONDS": "4",
}


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="mostrador-cluster-"))
    servers = LocalCluster(root)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def cluster_redis(cluster: LocalCluster) -> AsyncIterator[Redis]:
    client = create_redis(cluster.url)
    try:
        yield client
    finally:
        await client.aclose()
        contracts.use_hash_tags(False)  # this test process goes on with a single Redis


async def test_keys_tagged_streams_read_per_slot(cluster_redis: Redis) -> None:
    redis = cluster_redis
    assert is_cluster(redis)
    stores = [uuid.uuid4() for _ in range(40)]
    # A store's keys share its bucket's tag (one slot), and keep their usual name after it.
    for store in stores:
        stream = messages_stream(store)
        assert stream.endswith(f"}}messages:store-{store}") and stream.startswith("{s")
        assert key_slot(stream.encode()) == key_slot(outbox_stream(store).encode())
        assert key_slot(stream.encode()) == key_slot(worker_lease_key(store).encode())
    slots = group_by_slot(redis, [messages_stream(store) for store in stores])
    assert 1 < len(slots) <= contracts.HASH_TAG_BUCKETS

    consumer = StreamConsumer(redis, MESSAGES_GROUP, messages_stream, block_ms=100)
    for store in stores[:20]:
        await redis.xadd(messages_stream(store), {"n": "old"})
    for store in stores:
        await consumer.own(store)
    for store in stores:
        for n in range(3):
            await redis.xadd(messages_stream(store), {"n": str(n)})
    seen: dict[uuid.UUID, list[str]] = {store: [] for store in stores}
    expected = 20 * 1 + 40 * 3

    async def consume() -> None:
        count = 0
        async for batch in consumer.batches():
            for entry in batch:
                seen[entry.store_id].append(entry.fields["n"])
            await consumer.ack_many(batch)
            count += len(batch)
            if count >= expected:
                return

    await asyncio.wait_for(consume(), 30)
    consumer.close()
    for index, store in enumerate(stores):
        assert seen[store] == (["old"] if index < 20 else []) + ["0", "1", "2"], store
    for store in stores:
        pending = await redis.xpending(messages_stream(store), MESSAGES_GROUP)
        assert pending["pending"] == 0

    # Leases of many slots: renewed and released, one script per slot.
    leases = Leases(redis, ttl_seconds=5)
    for store in stores:
        assert await leases.acquire(worker_lease_key(store))
    await redis.set(worker_lease_key(stores[0]), "somebody else")
    assert await leases.renew() == [worker_lease_key(stores[0])]
    await leases.release(*leases.held())
    assert [await redis.exists(worker_lease_key(store)) for store in stores[1:]] == [0] * 39

    # The login rate limiter: its two counters are in different slots (no MULTI on a cluster), still counted.
    limits = {"ip": "10.0.0.1", "email": "a@example.com", "per_ip": 2, "per_account": 5, "window_seconds": 60}
    for _ in range(2):
        await count_login_attempt(redis, **limits)  # type: ignore[arg-type]
    with pytest.raises(TooManyAttempts):
        await count_login_attempt(redis, **limits)  # type: ignore[arg-type]

    # Pub/sub through the cluster: a channel published on any node reaches a subscriber on another.
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(STORES_CHANGED_CHANNEL)
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
        await redis.publish(STORES_CHANGED_CHANNEL, "hello")
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None and message["data"] == "hello"


@pytest.mark.parametrize("restart_master", [False, True], ids=["steady", "master-restarted"])
async def test_pipeline_on_cluster(
    database_url: str,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
    cluster: LocalCluster,
    cluster_redis: Redis,
    tmp_path: Path,
    restart_master: bool,
) -> None:
    overrides = dict(FAST_RECOVERY)
    if restart_master:
        # The simulated WhatsApp network stays up on the test's single Redis, as in test_outages: only our
        # queue loses a master. (With the network on the cluster too, the send in flight when it went down
        # fails on "WhatsApp's side", and an interrupted send is never repeated: a reply rightly left failed.)
        overrides["MOSTRADOR_SIM_REDIS_URL"] = redis_url
    else:
        redis = cluster_redis  # everything on the cluster, the simulator's keys too
    processes = Processes(database_url, cluster.url, tmp_path / "logs", overrides)
    load: asyncio.Task[dict[tuple[str, str], float]] | None = None
    try:
        stores = await create_stores(sessionmaker, redis, STORES, queue_redis=cluster_redis)
        processes.start("sessions", "sessions")
        processes.start("worker", "worker")
        await wait_connected(sessionmaker, stores)
        total = STORES * CHATS * PER_CHAT
        load = asyncio.create_task(inject_steady(redis, stores, CHATS, PER_CHAT, rate=60))
        await wait_replies(redis, stores, total // 4, timeout=120)
        if restart_master:
            # The master holding the first store's queue: killed (no replica takes over), back 2 s later with
            # its AOF; meanwhile its slots refuse every command and the cluster reports itself down.
            node = cluster_redis.get_node_from_key(messages_stream(stores[0]))  # type: ignore[attr-defined]
            port = int(node.port)
            cluster.kill_node(port)
            await asyncio.sleep(2)
            cluster.start_node(port)
            cluster.wait_ok()
        await load

        async def all_saved() -> bool:
            async with sessionmaker() as session:
                return await session.scalar(select(func.count()).where(Message.direction == "in")) == total

        # Every inbound message saved, then every row final and every entry acknowledged (on the queue's Redis):
        # nothing more can be sent.
        await wait_for(all_saved, timeout=180, interval=0.5, what="every inbound message saved")
        await wait_for(
            lambda: settled(cluster_redis, sessionmaker, stores), timeout=180, what="nothing to send"
        )
        outcome, interrupted, report = await check_after_interruptions(
            redis, sessionmaker, stores, CHATS, PER_CHAT
        )
        if restart_master:
            # An outage that outlasts the leases (4 s; a loaded machine restarts the master slowly) drops the
            # stores: a send cut short between its claim and its outcome is marked failed, never sent again (it
            # may have reached the customer), as after a SIGKILL. Those are the only replies that may be missing.
            assert outcome.replies_not_sent == interrupted and outcome.missing <= interrupted, report
        else:
            assert outcome.clean and interrupted == 0, report
    finally:
        if load is not None:
            load.cancel()
        processes.stop_all()
