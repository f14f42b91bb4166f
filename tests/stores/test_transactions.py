"""One request, one transaction: committed before the response is sent, its notifications only after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.contracts import STORES_CHANGED_CHANNEL
from tests.stores.test_endpoints import create_store, subscribe

REJECTED_NAME = "rejected at commit"
REJECTED_LINK = "link rejected at commit"

# A deferred constraint trigger runs at COMMIT: the request's statements succeed, its commit fails. A real
# PostgreSQL failure at the one moment that matters, with nothing mocked.
CREATE_REJECTER = [
    f"""
    CREATE FUNCTION test_reject_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.name = '{REJECTED_NAME}' OR (NEW.name = '{REJECTED_LINK}' AND NEW.desired_state = 'linked') THEN
            RAISE EXCEPTION 'rejected at commit by the test';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER test_reject_at_commit AFTER INSERT OR UPDATE ON stores
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_reject_at_commit()
    """,
]
DROP_REJECTER = [
    "DROP TRIGGER IF EXISTS test_reject_at_commit ON stores",
    "DROP FUNCTION IF EXISTS test_reject_at_commit()",
]


@pytest.fixture
async def rejecter(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        for statement in CREATE_REJECTER:
            await conn.execute(text(statement))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            for statement in DROP_REJECTER:
                await conn.execute(text(statement))


async def test_a_commit_that_fails_is_an_error_response_not_a_2xx(
    client: AsyncClient, rejecter: None
) -> None:
    response = await client.post("/v1/stores", json={"name": REJECTED_NAME})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "commit_failed"
    assert (await client.get("/v1/stores")).json()["items"] == []  # and nothing was saved


async def test_a_failed_commit_notifies_nobody(client: AsyncClient, redis: Redis, rejecter: None) -> None:
    rejected = await create_store(client, REJECTED_LINK)
    accepted = await create_store(client, "Kiosco")
    pubsub = await subscribe(redis, STORES_CHANGED_CHANNEL)
    try:
        response = await client.post(f"/v1/stores/{rejected['id']}/link")
        assert response.status_code == 503, response.text
        assert (await client.post(f"/v1/stores/{accepted['id']}/link")).status_code == 202
        # A hook runs before its response is sent, so a publication of the failed request would come first.
        notified: list[str] = []
        async with asyncio.timeout(5):
            while accepted["id"] not in notified:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                if message is not None:
                    notified.append(message["data"])
    finally:
        await pubsub.aclose()
    assert rejected["id"] not in notified
    assert (await client.get(f"/v1/stores/{rejected['id']}")).json()["desired_state"] == "unlinked"


async def test_store_events_hold_no_transaction_while_they_stream(
    sse_client: AsyncClient, engine: AsyncEngine
) -> None:
    store = await create_store(sse_client)
    async with asyncio.timeout(10), sse_client.stream("GET", f"/v1/stores/{store['id']}/events") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "event: status"  # the endpoint returned; the body streams
        async with engine.connect() as conn:
            holding = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'mostrador-api' AND state LIKE 'idle in transaction%'"
                )
            )
        assert holding == 0
