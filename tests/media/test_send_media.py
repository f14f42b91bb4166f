"""`POST /v1/stores/{id}/messages` with media: an upload or a URL, through the outbox to the simulated customer,
bytes equal; the URL fetch's limits (http/https only, no private addresses, size, time, errors)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from redis.asyncio import Redis

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.models import StoreStatus
from tests.media.helpers import jpeg, pdf
from tests.media.test_roundtrip import tenant_of
from tests.sending.helpers import rows, set_status
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status
from tests.support import post_store

PHOTO = jpeg(50_000)
DOCUMENT = pdf(30_000)


class Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/foto.jpg":
            self._send(200, PHOTO, "image/jpeg")
        elif self.path == "/files/lista.pdf":  # no useful type: guessed from the name
            self._send(200, DOCUMENT, "application/octet-stream")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/foto.jpg")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/huge.jpg":  # announces 6 MB: refused before reading
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(6 * 1024 * 1024))
            self.end_headers()
        elif self.path == "/slow.jpg":
            time.sleep(2)
            self._send(200, PHOTO, "image/jpeg")
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # A client that gave up (the timeout test) closed the connection.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def allow_private(app: FastAPI, settings: Settings, **more: Any) -> None:
    """This test's API may fetch from 127.0.0.1 (the files server), as MOSTRADOR_MEDIA_FETCH_ALLOW_PRIVATE does."""
    app.state.mostrador.settings = settings.model_copy(update={"media_fetch_allow_private": True, **more})


async def test_send_media_by_upload_and_by_url(
    app: FastAPI, client: AsyncClient, files: str, settings: Settings, sessionmaker: AsyncSessionMaker,
    redis: Redis, redis_url: str,
) -> None:  # fmt: skip
    allow_private(app, settings)
    quick = fast_settings(settings)
    store_id = await create_store(
        sessionmaker, redis, paired_phone="+5493400000104", tenant_id=await tenant_of(client)
    )
    upload = (await client.post("/v1/uploads", content=PHOTO, headers={"Content-Type": "image/jpeg"})).json()
    url = f"/v1/stores/{store_id}/messages"
    async with running_manager(quick, sessionmaker, redis, redis_url):
        await wait_status(sessionmaker, store_id, "connected")
        by_upload = await client.post(
            url,
            json={"to": "+5491166660000", "media": {"upload_id": upload["id"]}, "caption": "mirá"},
            headers={"Idempotency-Key": "foto-1"},
        )
        assert by_upload.status_code == 202, by_upload.text
        message = by_upload.json()
        assert (message["type"], message["text"], message["status"]) == ("image", "mirá", "pending")
        assert message["media"]["mime"] == "image/jpeg" and message["media"]["size"] == len(PHOTO)
        assert message["media"]["caption"] == "mirá" and message["media"]["status"] == "available"
        # The same key and body: the same message, nothing new sent.
        again = await client.post(
            url,
            json={"to": "+5491166660000", "media": {"upload_id": upload["id"]}, "caption": "mirá"},
            headers={"Idempotency-Key": "foto-1"},
        )
        assert again.json()["id"] == message["id"]
        by_url = await client.post(url, json={"to": "+5491166660000", "media": {"url": f"{files}/redirect"}})
        assert by_url.status_code == 202, by_url.text
        by_name = await client.post(
            url, json={"to": "+5491166660000", "media": {"url": f"{files}/files/lista.pdf"}}
        )
        assert by_name.status_code == 202, by_name.text
        assert by_name.json()["type"] == "document"
        assert by_name.json()["media"]["file_name"] == "lista.pdf"

        async def sent() -> list[dict[str, Any]]:
            items = (await client.get(f"/v1/sim/stores/{store_id}/outbound")).json()["items"]
            return items if len(items) == 3 else []

        items = await wait_for(sent, timeout=20, what="three media messages on the network")
    assert [i["type"] for i in items] == ["image", "image", "document"]
    for item, data in zip(items, (PHOTO, PHOTO, DOCUMENT), strict=True):
        assert (await client.get(item["media"]["url"])).content == data  # bytes equal
    # The sent message's media is downloadable from the API as well.
    response = await client.get(message["media"]["download_url"])
    assert response.content == PHOTO


async def test_media_url_limits(
    app: FastAPI, client: AsyncClient, files: str, settings: Settings, sessionmaker: AsyncSessionMaker
) -> None:
    store = await post_store(client)
    await set_status(sessionmaker, store, StoreStatus.connected)
    url = f"/v1/stores/{store}/messages"

    async def send(media: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = await client.post(url, json={"to": "+5491166660000", "media": media})
        return response.status_code, response.json()

    # Private addresses are refused by default (the files server is on 127.0.0.1), and so are other schemes.
    status, body = await send({"url": f"{files}/foto.jpg"})
    assert (status, body["error"]["code"]) == (422, "media_url_refused"), body
    assert "private" in body["error"]["message"]
    status, body = await send({"url": "http://169.254.169.254/latest/meta-data"})
    assert (status, body["error"]["code"]) == (422, "media_url_refused"), body
    status, body = await send({"url": "ftp://example.com/foto.jpg"})
    assert (status, body["error"]["code"]) == (422, "validation_error"), body
    status, body = await send({"url": f"{files}/foto.jpg", "upload_id": str(uuid.uuid4())})
    assert (status, body["error"]["code"]) == (422, "validation_error"), body
    status, body = await send({"upload_id": str(uuid.uuid4())})
    assert (status, body["error"]["code"]) == (404, "upload_not_found"), body

    allow_private(app, settings)
    status, body = await send({"url": f"{files}/huge.jpg"})
    assert (status, body["error"]["code"]) == (413, "media_too_large"), body
    status, body = await send({"url": f"{files}/missing.jpg"})
    assert (status, body["error"]["code"], body["error"]["details"]["status"]) == (
        422,
        "media_url_refused",
        404,
    )
    allow_private(app, settings, media_fetch_timeout_seconds=0.5)  # the server answers after 2 s
    status, body = await send({"url": f"{files}/slow.jpg"})
    assert (status, body["error"]["code"]) == (422, "media_url_refused"), body
    assert "longer than" in body["error"]["message"]
    status, body = await send({"url": f"{files}/foto.jpg", "type": "audio"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type"), body
    # A text and media at once, or a caption without media: 422.
    response = await client.post(url, json={"to": "+5491166660000", "text": "hola", "caption": "x"})
    assert response.status_code == 422
    assert await rows(sessionmaker, store) == []  # nothing written for any of them


async def test_an_upload_is_sent_only_where_it_may_be(
    client: AsyncClient, other_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    from sqlalchemy import update

    from app.kit.db import transaction
    from app.models import Upload
    from tests.support import create_api_key

    first, second = await post_store(client, "Uno"), await post_store(client, "Dos")
    for store in (first, second):
        await set_status(sessionmaker, store, StoreStatus.connected)
    key = await create_api_key(client, name="uno", scopes=["messages:send"], store_id=first)
    limited = AsyncClient(transport=client._transport, base_url="http://test")
    limited.headers["Authorization"] = f"Bearer {key['key']}"
    response = await limited.post("/v1/uploads", content=PHOTO, headers={"Content-Type": "image/jpeg"})
    upload_id = response.json()["id"]
    body = {"to": "+5491166660000", "media": {"upload_id": upload_id}}

    # The key's upload belongs to its store: another store of the tenant cannot send it, another tenant
    # cannot even see it.
    response = await client.post(f"/v1/stores/{second}/messages", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "upload_not_found")
    theirs = await post_store(other_client)
    await set_status(sessionmaker, theirs, StoreStatus.connected)
    response = await other_client.post(f"/v1/stores/{theirs}/messages", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "upload_not_found")
    response = await limited.post(f"/v1/stores/{first}/messages", json=body)
    assert response.status_code == 202, response.text

    # An expired upload cannot be sent.
    async with transaction(sessionmaker) as session:
        await session.execute(update(Upload).values(expires_at=Upload.created_at))
    response = await limited.post(f"/v1/stores/{first}/messages", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "upload_not_found")
    await limited.aclose()
