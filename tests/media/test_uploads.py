"""POST /v1/uploads: WhatsApp's limits per type, clear errors, tenant-scoped, and the media settings."""

from __future__ import annotations

import hashlib

from httpx import AsyncClient
from sqlalchemy import select

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.media.storage import LocalMediaStorage
from app.models import Upload
from tests.media.helpers import jpeg, pdf
from tests.support import create_api_key, post_store


async def upload(client: AsyncClient, data: bytes, mime: str, **params: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await client.post("/v1/uploads", content=data, headers={"Content-Type": mime}, params=params)
    return response.status_code, response.json()


async def test_an_upload_is_stored_whole(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker
) -> None:
    data = jpeg()
    status, body = await upload(client, data, "image/jpeg", file_name="foto.jpg")
    assert status == 201, body
    assert (body["type"], body["mime"], body["size"], body["file_name"]) == (
        "image",
        "image/jpeg",
        len(data),
        "foto.jpg",
    )
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    async with sessionmaker() as session:
        row = await session.scalar(select(Upload))
    assert row is not None and str(row.id) == body["id"]
    assert await LocalMediaStorage(settings.media_dir).get(row.storage_key) == data

    # A PDF is a document; a photo may be sent as a document too; a voice note keeps its codec parameter out.
    status, body = await upload(client, pdf(), "application/pdf")
    assert (status, body["type"]) == (201, "document")
    status, body = await upload(client, jpeg(), "image/jpeg", type="document")
    assert (status, body["type"]) == (201, "document")


async def test_limits_are_clear_errors(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    # Larger than WhatsApp's 5 MB for an image: 413, saying the limit.
    status, body = await upload(client, jpeg(5 * 1024 * 1024 + 1), "image/jpeg")
    assert status == 413, body
    assert body["error"]["code"] == "media_too_large"
    assert body["error"]["details"]["max_bytes"] == 5 * 1024 * 1024
    # The same bytes as a document (100 MB) are fine.
    status, body = await upload(client, jpeg(5 * 1024 * 1024 + 1), "image/jpeg", type="document")
    assert status == 201, body

    # A type WhatsApp does not take as an image, or no type at all: 415 with what it accepts.
    status, body = await upload(client, b"GIF89a" + b"\0" * 100, "image/gif")
    assert status == 415 and body["error"]["code"] == "unsupported_media_type", body
    assert "image/jpeg" in body["error"]["details"]["accepted"]
    status, body = await upload(client, pdf(), "application/pdf", type="image")
    assert status == 415, body
    status, body = await upload(client, b"x" * 10, "")
    assert status == 415, body

    # Bytes that are not what they claim, or none: 422.
    status, body = await upload(client, pdf(), "image/jpeg")
    assert status == 422 and body["error"]["code"] == "media_content_mismatch", body
    status, body = await upload(client, b"", "application/pdf")
    assert status == 422 and body["error"]["code"] == "invalid_media", body
    status, body = await upload(client, jpeg(), "image/jpeg", type="sticker")
    assert status == 422 and body["error"]["code"] == "validation_error", body

    async with sessionmaker() as session:
        kept = (await session.scalars(select(Upload))).all()
    assert len(kept) == 1  # only the document: no half-written row for a refused upload


async def test_who_may_upload(client: AsyncClient, viewer_client: AsyncClient) -> None:
    status, body = await upload(viewer_client, jpeg(), "image/jpeg")
    assert status == 403, body
    store_id = await post_store(client)
    key = await create_api_key(client, name="send only", scopes=["messages:send"], store_id=store_id)
    keyed = AsyncClient(transport=client._transport, base_url="http://test")
    keyed.headers["Authorization"] = f"Bearer {key['key']}"
    status, body = await upload(keyed, jpeg(), "image/jpeg")
    assert status == 201, body
    await keyed.aclose()


async def test_media_settings(client: AsyncClient, viewer_client: AsyncClient) -> None:
    assert (await client.get("/v1/media/settings")).json() == {"retention_days": None}
    response = await client.patch("/v1/media/settings", json={"retention_days": 30})
    assert response.status_code == 200 and response.json() == {"retention_days": 30}
    assert (await viewer_client.get("/v1/media/settings")).json() == {"retention_days": 30}
    assert (await viewer_client.patch("/v1/media/settings", json={"retention_days": 1})).status_code == 403
    assert (await client.patch("/v1/media/settings", json={"retention_days": 0})).status_code == 422
    response = await client.patch("/v1/media/settings", json={"retention_days": None})
    assert response.json() == {"retention_days": None}
