"""GET /v1/stores/{store_id}/stats on a known data set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from redis.asyncio import Redis

from app.contracts import messages_dlq
from app.kit.db import AsyncSessionMaker
from tests.messages.helpers import LID_CHAT, PHONE_CHAT, add_conversation, add_message
from tests.support import insert_other_tenant_store, post_store

DAY1 = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


async def test_stats_of_a_known_period(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await post_store(client)
    ana = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    lid = await add_conversation(sessionmaker, store_id, LID_CHAT)
    quiet = await add_conversation(sessionmaker, store_id, "5491100000009@s.whatsapp.net")

    # Four customer messages answered after 10, 20, 30 and 40 s (the second answered twice: the first counts).
    delays = [10, 20, 30, 40]
    for i, delay in enumerate(delays):
        chat, day = (ana, DAY1) if i < 2 else (lid, DAY2)
        asked = day + timedelta(minutes=i)
        inbound = await add_message(sessionmaker, store_id, chat, created_at=asked)
        await add_message(
            sessionmaker,
            store_id,
            chat,
            direction="out",
            reply_to_id=inbound,
            created_at=asked + timedelta(seconds=delay),
        )
        if i == 1:
            await add_message(
                sessionmaker,
                store_id,
                chat,
                direction="out",
                reply_to_id=inbound,
                created_at=asked + timedelta(minutes=9),
            )
    # One unanswered message, two failed sends on day 2.
    await add_message(sessionmaker, store_id, lid, created_at=DAY2 + timedelta(hours=1))
    for _ in range(2):
        await add_message(
            sessionmaker,
            store_id,
            lid,
            direction="out",
            status="failed",
            created_at=DAY2 + timedelta(hours=2),
        )
    # Outside the period, and another tenant's store: not counted.
    await add_message(sessionmaker, store_id, quiet, created_at=DAY1 - timedelta(days=3))
    other = await insert_other_tenant_store(sessionmaker)
    await add_message(
        sessionmaker, other, await add_conversation(sessionmaker, other, PHONE_CHAT), created_at=DAY1
    )
    for _ in range(3):
        await redis.xadd(messages_dlq(store_id), {"message_id": "x"})
    await redis.xadd(messages_dlq(other), {"message_id": "y"})

    since, until = DAY1 - timedelta(hours=1), DAY2 + timedelta(hours=12)
    response = await client.get(
        f"/v1/stores/{store_id}/stats", params={"since": since.isoformat(), "until": until.isoformat()}
    )
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["days"] == [
        {"day": "2026-10-01", "inbound": 2, "outbound": 3},
        {"day": "2026-10-02", "inbound": 3, "outbound": 4},
    ]
    assert (stats["inbound"], stats["outbound"]) == (5, 7)
    assert stats["active_conversations"] == 2
    # percentile_cont over 10, 20, 30, 40: the median between 20 and 30, p95 at 40 - 0.15 * 10.
    assert stats["reply_time"] == {"replied": 4, "median_seconds": 25.0, "p95_seconds": 38.5}
    assert stats["failed_sends"] == 2
    assert stats["dead_letters"] == 3

    empty = await client.get(
        f"/v1/stores/{store_id}/stats",
        params={"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"},
    )
    assert empty.status_code == 200
    assert empty.json()["days"] == [] and empty.json()["reply_time"]["median_seconds"] is None
    default = (await client.get(f"/v1/stores/{store_id}/stats")).json()  # the last 30 days: none of the above
    assert default["inbound"] == 0 and default["dead_letters"] == 3
    assert (await client.get(f"/v1/stores/{other}/stats")).status_code == 404
