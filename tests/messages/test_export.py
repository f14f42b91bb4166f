"""GET /v1/stores/{store_id}/messages/export: NDJSON and CSV, streamed in constant memory."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import psutil
from httpx import AsyncClient

from app.kit.db import AsyncSessionMaker
from tests.messages.helpers import PHONE_CHAT, add_conversation, add_message, bulk_insert
from tests.support import insert_other_tenant_store, post_store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_ndjson_and_csv_hold_the_periods_messages_oldest_first(
    sse_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(sse_client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    ids = [
        await add_message(
            sessionmaker, store_id, chat, text=f"m{i}, con coma", created_at=T0 + timedelta(hours=i)
        )
        for i in range(4)
    ]
    await add_message(
        sessionmaker,
        store_id,
        chat,
        type="image",
        text=None,
        media={"mimetype": "image/png"},
        created_at=T0 + timedelta(minutes=30),
    )
    other = await insert_other_tenant_store(sessionmaker)
    await add_message(
        sessionmaker, other, await add_conversation(sessionmaker, other, PHONE_CHAT), text="ajeno"
    )
    period = {"since": (T0 + timedelta(hours=1)).isoformat(), "until": (T0 + timedelta(hours=3)).isoformat()}

    response = await sse_client.get(f"/v1/stores/{store_id}/messages/export", params=period)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["id"] for line in lines] == [str(ids[1]), str(ids[2])]
    listed = await sse_client.get(f"/v1/stores/{store_id}/messages/{ids[1]}")
    detail = listed.json()
    detail.pop("status_history")  # the one message's page adds its history
    assert lines[0] == detail  # the same message object as the API's

    response = await sse_client.get(f"/v1/stores/{store_id}/messages/export", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["text"] for row in rows] == [
        "m0, con coma",
        "",
        "m1, con coma",
        "m2, con coma",
        "m3, con coma",
    ]
    image = next(row for row in rows if row["type"] == "image")
    assert json.loads(image["media"])["mime"] == "image/png" and image["chat"] == "+5491155550001"

    for params in ({"format": "xml"}, {"since": "nunca"}):
        response = await sse_client.get(f"/v1/stores/{store_id}/messages/export", params=params)
        assert response.status_code == 422, params
    response = await sse_client.get(f"/v1/stores/{other}/messages/export")
    assert response.status_code == 404 and response.json()["error"]["code"] == "store_not_found"


async def test_an_export_of_100000_messages_streams_in_constant_memory(
    sse_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    """The export reads a server-side cursor 1,000 rows at a time. The process's RSS is sampled on every chunk
    received; its growth must stay far below the size of the export itself (about 48 MB here, and holding the
    100,000 rows as ORM objects and message models at once would take several hundred MB): 40 MB of headroom
    covers a batch, the allocator's arenas and the database driver's buffers, not the whole export."""
    store_id = await post_store(sse_client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    count = 100_000
    await bulk_insert(
        sessionmaker, store_id, chat, count=count, start=T0, text_value="un mensaje de prueba " * 8
    )

    process = psutil.Process()
    url = f"/v1/stores/{store_id}/messages/export"
    async with sse_client.stream("GET", url, params={"until": "2026-11-01T12:00:10Z"}) as warm_up:
        await warm_up.aread()  # the first export loads code and fills caches: not part of the measure
    baseline = peak = process.memory_info().rss
    lines = size = 0
    async with sse_client.stream("GET", url) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            lines += chunk.count(b"\n")
            size += len(chunk)
            peak = max(peak, process.memory_info().rss)
    assert lines == count
    growth = peak - baseline
    print(f"export: {lines} lines, {size / 2**20:.1f} MB streamed, RSS growth {growth / 2**20:.1f} MB")
    assert size > 45 * 2**20, size  # the bound below is well under the export's size
    assert growth < 40 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB while streaming {size / 2**20:.1f} MB"
