"""The media retention job, with a moved clock: a tenant's media older than its `retention_days` is deleted and
its row says `expired`; another tenant (no retention) keeps everything; expired uploads go too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.kit.db import AsyncSessionMaker, transaction
from app.media.storage import LocalMediaStorage, MediaNotFound, inbound_key
from app.models import Conversation, Message, Upload
from tests.media.helpers import jpeg
from tests.media.test_roundtrip import tenant_of
from tests.sessions.helpers import create_store
from workers.retention import MediaRetention


async def stored_message(
    sessionmaker: AsyncSessionMaker, storage: LocalMediaStorage, store_id: uuid.UUID, created_at: datetime
) -> tuple[uuid.UUID, bytes]:
    data = jpeg(5_000)
    async with transaction(sessionmaker) as session:
        chat = await session.scalar(select(Conversation).where(Conversation.store_id == store_id))
        if chat is None:
            chat = Conversation(store_id=store_id, chat_jid="5491100000001@s.whatsapp.net", bot_state={})
            session.add(chat)
            await session.flush()
        message_id = uuid.uuid4()
        key = inbound_key(store_id, message_id)
        await storage.put(key, data, content_type="image/jpeg")
        session.add(
            Message(
                id=message_id, store_id=store_id, conversation_id=chat.id, direction="in",
                wa_id=f"W{message_id.hex[:12]}", type="image", status="handled", created_at=created_at,
                media={"state": "stored", "key": key, "mimetype": "image/jpeg", "size": len(data)},
            )
        )  # fmt: skip
    return message_id, data


async def test_retention_with_a_moved_clock(
    client: AsyncClient, other_client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker,
    redis: Redis,
) -> None:  # fmt: skip
    storage = LocalMediaStorage(settings.media_dir)
    now = datetime.now(UTC)
    mine = await create_store(sessionmaker, redis, tenant_id=await tenant_of(client))
    theirs = await create_store(sessionmaker, redis, tenant_id=await tenant_of(other_client))
    old, old_data = await stored_message(sessionmaker, storage, mine, now - timedelta(days=40))
    recent, recent_data = await stored_message(sessionmaker, storage, mine, now - timedelta(days=5))
    kept, kept_data = await stored_message(sessionmaker, storage, theirs, now - timedelta(days=400))
    assert (await client.patch("/v1/media/settings", json={"retention_days": 30})).status_code == 200

    assert (await client.get(f"/v1/stores/{mine}/messages/{old}/media")).content == old_data  # before
    clock = [now]
    job = MediaRetention(sessionmaker, storage, clock=lambda: clock[0])
    report = await job.run_once()
    assert report.expired_messages == 1

    response = await client.get(f"/v1/stores/{mine}/messages/{old}/media")
    assert response.status_code == 410 and response.json()["error"]["code"] == "media_expired"
    item = (await client.get(f"/v1/stores/{mine}/messages/{old}")).json()
    assert item["media"]["status"] == "expired" and item["media"]["download_url"] is None
    assert item["media"]["mime"] == "image/jpeg"  # the metadata stays
    with pytest.raises(MediaNotFound):  # the file is gone
        await storage.get(inbound_key(mine, old))
    assert (await client.get(f"/v1/stores/{mine}/messages/{recent}/media")).content == recent_data
    assert (await other_client.get(f"/v1/stores/{theirs}/messages/{kept}/media")).content == kept_data

    # Run again at once: nothing more to do. 26 days later the recent one is 31 days old: it goes too.
    assert (await job.run_once()).expired_messages == 0
    clock[0] = now + timedelta(days=26)
    assert (await job.run_once()).expired_messages == 1
    assert (await client.get(f"/v1/stores/{mine}/messages/{recent}/media")).status_code == 410
    # The tenant without a retention setting keeps its 400-day-old file whatever the clock says.
    clock[0] = now + timedelta(days=4000)
    await job.run_once()
    assert (await other_client.get(f"/v1/stores/{theirs}/messages/{kept}/media")).content == kept_data
    async with sessionmaker() as session:
        row = await session.get(Message, old)
    assert row is not None and row.media is not None and "key" not in row.media
    assert row.media["expired_at"] is not None


async def test_expired_uploads_are_deleted(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker
) -> None:
    storage = LocalMediaStorage(settings.media_dir)
    response = await client.post("/v1/uploads", content=jpeg(), headers={"Content-Type": "image/jpeg"})
    upload_id = uuid.UUID(response.json()["id"])
    async with sessionmaker() as session:
        upload = await session.get(Upload, upload_id)
    assert upload is not None
    job = MediaRetention(sessionmaker, storage, clock=lambda: datetime.now(UTC))
    assert (await job.run_once()).deleted_uploads == 0
    job.clock = lambda: datetime.now(UTC) + timedelta(hours=settings.media_upload_ttl_hours, minutes=1)
    assert (await job.run_once()).deleted_uploads == 1
    async with sessionmaker() as session:
        assert await session.get(Upload, upload_id) is None
    with pytest.raises(MediaNotFound):
        await storage.get(upload.storage_key)


async def test_one_worker_per_interval(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    job = MediaRetention(sessionmaker, LocalMediaStorage(settings.media_dir))
    assert await job.run_if_first(redis, 60) is not None
    assert await job.run_if_first(redis, 60) is None  # another worker (or this one) ran it in this interval
