"""The storage backends against real servers: local files, and S3 through boto3 against moto's S3-compatible
server (from PyPI) started on 127.0.0.1 by the test."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.config import Settings
from app.media.storage import LocalMediaStorage, MediaNotFound, MediaStorage, S3MediaStorage, create_storage
from tests.media.helpers import jpeg


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def s3_settings(settings: Settings, endpoint: str, bucket: str) -> Settings:
    return settings.model_copy(
        update={
            "media_s3_bucket": bucket,
            "media_s3_endpoint_url": endpoint,
            "media_s3_region": "us-east-1",
            "media_s3_access_key_id": "test",
            "media_s3_secret_access_key": "test",
            "media_s3_prefix": "mostrador",
        }
    )


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings
) -> AsyncIterator[MediaStorage]:
    if request.param == "local":
        backend: MediaStorage = create_storage(settings.model_copy(update={"data_dir": tmp_path}))
        assert isinstance(backend, LocalMediaStorage)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"media-{os.urandom(4).hex()}"
        backend = create_storage(s3_settings(settings, endpoint, bucket))
        assert isinstance(backend, S3MediaStorage)
        backend.client.create_bucket(Bucket=bucket)
    yield backend
    await backend.close()


async def read_all(storage: MediaStorage, key: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in storage.read_range(key, start, end)])


async def test_put_get_ranges_copy_delete(storage: MediaStorage) -> None:
    data = os.urandom(300_000)  # several chunks
    key = "stores/abc/in/message-1"
    await storage.put(key, data, content_type="image/jpeg")
    assert await storage.get(key) == data
    assert await storage.size(key) == len(data)
    assert await read_all(storage, key, 0, len(data) - 1) == data
    assert await read_all(storage, key, 70_000, 200_000) == data[70_000:200_001]
    assert await read_all(storage, key, len(data) - 1, len(data) - 1) == data[-1:]

    # From a file object (an upload spooled to disk), then a copy that outlives its source.
    await storage.put("tenants/t/uploads/u", io.BytesIO(data[:1000]), content_type="application/pdf")
    await storage.copy("tenants/t/uploads/u", "stores/abc/out/copy")
    await storage.delete("tenants/t/uploads/u")
    assert await storage.get("stores/abc/out/copy") == data[:1000]

    # Overwriting replaces the whole object.
    await storage.put(key, b"short", content_type="text/plain")
    assert await storage.get(key) == b"short"

    await storage.delete(key)
    await storage.delete(key)  # twice: not an error
    for missing in (storage.get(key), storage.size(key), storage.copy(key, "stores/abc/out/x")):
        with pytest.raises(MediaNotFound):
            await missing
    with pytest.raises(MediaNotFound):
        await read_all(storage, key, 0, 1)


async def test_keys_cannot_leave_the_media_root(tmp_path: Path) -> None:
    storage = LocalMediaStorage(tmp_path / "media")
    for key in ("../secret", "/etc/passwd", "stores/../../x", "stores//x", ""):
        with pytest.raises(ValueError):
            await storage.put(key, b"x", content_type="text/plain")


async def test_s3_objects_carry_the_prefix_and_content_type(s3_endpoint: str, settings: Settings) -> None:
    bucket = f"media-{os.urandom(4).hex()}"
    storage = create_storage(s3_settings(settings, s3_endpoint, bucket))
    assert isinstance(storage, S3MediaStorage)
    storage.client.create_bucket(Bucket=bucket)
    await storage.put("stores/s/in/m", b"\xff\xd8\xffdata", content_type="image/jpeg")
    head = storage.client.head_object(Bucket=bucket, Key="mostrador/stores/s/in/m")
    assert head["ContentType"] == "image/jpeg" and head["ContentLength"] == 7
    await storage.close()


async def test_the_api_keeps_uploads_in_s3_when_configured(
    app: FastAPI, client: AsyncClient, s3_endpoint: str, settings: Settings
) -> None:
    bucket = f"media-{os.urandom(4).hex()}"
    configured = s3_settings(settings, s3_endpoint, bucket)
    app.state.mostrador.settings = configured
    storage = create_storage(configured)
    assert isinstance(storage, S3MediaStorage)
    storage.client.create_bucket(Bucket=bucket)
    data = jpeg()
    response = await client.post("/v1/uploads", content=data, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 201, response.text
    upload_id = response.json()["id"]
    tenant_id = (await client.get("/v1/users/me")).json()["tenant"]["id"]
    assert await storage.get(f"tenants/{tenant_id}/uploads/{upload_id}") == data
    await storage.close()
