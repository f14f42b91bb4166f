"""Where media bytes live: local files under the data dir by default, an S3-compatible bucket when
`MOSTRADOR_MEDIA_S3_BUCKET` is set. Every process builds its own from the settings (`create_storage`).

Keys are ours (`stores/<store>/in/<message>`, `tenants/<tenant>/uploads/<upload>`, ...), never a client's. S3 is
reached through boto3 (the AWS SDK itself: maintained by AWS, speaks to every S3-compatible server) in worker
threads; its async wrappers (aiobotocore) pin exact botocore versions and would tie our upgrades to theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from app.config import Settings

CHUNK = 256 * 1024  # per read: fewer thread hops for a large file, still a bounded buffer
_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


class MediaNotFound(Exception):
    """No object under that key (deleted by the retention job, or never written)."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"not a media key: {key!r}")
    return key


class MediaStorage(ABC):
    name: str

    @abstractmethod
    async def put(self, key: str, data: bytes | IO[bytes], *, content_type: str) -> None:
        """Write the object whole (a reader sees the old object or the new one, never a part)."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The whole object (WhatsApp media are at most 100 MB). Raises MediaNotFound."""

    @abstractmethod
    async def size(self, key: str) -> int:
        """The object's size in bytes. Raises MediaNotFound."""

    @abstractmethod
    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` (inclusive), in chunks."""

    @abstractmethod
    async def copy(self, source: str, target: str) -> None:
        """Copy an object (server-side where the backend can). Raises MediaNotFound."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing one is not an error (the retention job may run twice)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""


class LocalMediaStorage(MediaStorage):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes | IO[bytes], *, content_type: str) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes | IO[bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file in the same directory, renamed over the target: atomic on POSIX.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    while chunk := data.read(CHUNK):
                        out.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise MediaNotFound(key) from exc

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError as exc:
            raise MediaNotFound(key) from exc

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self._path(key).open, "rb")
        except FileNotFoundError as exc:
            raise MediaNotFound(key) from exc
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start + 1
            while left > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def copy(self, source: str, target: str) -> None:
        source_path, target_path = self._path(source), self._path(target)

        def copy() -> None:
            try:
                with source_path.open("rb") as handle:
                    self._put(target_path, handle)
            except FileNotFoundError as exc:
                raise MediaNotFound(source) from exc

        await asyncio.to_thread(copy)

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def delete() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

        await asyncio.to_thread(delete)


class S3MediaStorage(MediaStorage):
    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
    ) -> None:
        import boto3  # type: ignore[import-untyped]  # only when S3 is configured
        from botocore.config import Config  # type: ignore[import-untyped]

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}

    async def put(self, key: str, data: bytes | IO[bytes], *, content_type: str) -> None:
        name = self._key(key)
        if isinstance(data, bytes):
            await asyncio.to_thread(
                self.client.put_object, Bucket=self.bucket, Key=name, Body=data, ContentType=content_type
            )
        else:  # multipart for large files, by boto3's transfer manager
            await asyncio.to_thread(
                self.client.upload_fileobj, data, self.bucket, name, ExtraArgs={"ContentType": content_type}
            )

    async def get(self, key: str) -> bytes:
        try:
            response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._missing(exc):
                raise MediaNotFound(key) from exc
            raise
        body = response["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def size(self, key: str) -> int:
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._missing(exc):
                raise MediaNotFound(key) from exc
            raise
        return int(head["ContentLength"])

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            response = await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end}"
            )
        except Exception as exc:
            if self._missing(exc):
                raise MediaNotFound(key) from exc
            raise
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def copy(self, source: str, target: str) -> None:
        try:
            await asyncio.to_thread(
                self.client.copy,
                {"Bucket": self.bucket, "Key": self._key(source)},
                self.bucket,
                self._key(target),
            )
        except Exception as exc:
            if self._missing(exc):
                raise MediaNotFound(source) from exc
            raise

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def create_storage(settings: Settings) -> MediaStorage:
    if settings.media_s3_bucket:
        return S3MediaStorage(
            bucket=settings.media_s3_bucket,
            endpoint_url=settings.media_s3_endpoint_url,
            region=settings.media_s3_region,
            access_key_id=settings.media_s3_access_key_id,
            secret_access_key=settings.media_s3_secret_access_key,
            prefix=settings.media_s3_prefix,
        )
    return LocalMediaStorage(settings.media_dir)


def inbound_key(store_id: object, message_id: object) -> str:
    return f"stores/{store_id}/in/{message_id}"


def outbound_key(store_id: object, name: object) -> str:
    return f"stores/{store_id}/out/{name}"


def upload_key(tenant_id: object, upload_id: object) -> str:
    return f"tenants/{tenant_id}/uploads/{upload_id}"
