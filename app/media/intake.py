"""Receiving media bytes (an upload's body, a fetched URL's response) within WhatsApp's limits: spooled to a
temporary file (memory up to 1 MB, then disk), hashed on the way, refused as soon as it is too large."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from app.media.errors import InvalidMedia, MediaTooLarge, UnsupportedMediaType
from app.media.limits import LIMITS, MEDIA_TYPES, MediaType, content_matches, max_bytes

SPOOL_BYTES = 1024 * 1024
HEAD_BYTES = 16


@dataclass
class Received:
    file: IO[bytes]
    size: int
    sha256: str
    mime: str
    type: MediaType

    def close(self) -> None:
        self.file.close()


def check_type(kind: MediaType, mime: str) -> None:
    if not mime:
        raise UnsupportedMediaType(
            "the media's type is not given: send it as the Content-Type (e.g. `image/jpeg`)",
            details={"accepted": sorted(LIMITS[kind].mimes)},
        )
    if mime not in LIMITS[kind].mimes:
        raise UnsupportedMediaType(
            f"WhatsApp does not accept {mime} as {'an' if kind in ('image', 'audio') else 'a'} {kind}",
            details={"type": kind, "mime": mime, "accepted": sorted(LIMITS[kind].mimes)},
        )


def check_size(kind: MediaType, size: int, overall: int) -> None:
    limit = max_bytes(kind, overall)
    if size > limit:
        raise MediaTooLarge(
            f"a {kind} may be at most {limit} bytes",
            details={"type": kind, "max_bytes": limit, "size": size},
        )


async def receive(
    chunks: AsyncIterator[bytes],
    *,
    kind: MediaType,
    mime: str,
    overall: int,
    declared_size: int | None = None,
) -> Received:
    if kind not in MEDIA_TYPES:
        raise InvalidMedia(f"unknown media type {kind!r}", details={"accepted": list(MEDIA_TYPES)})
    check_type(kind, mime)
    if declared_size is not None:
        check_size(kind, declared_size, overall)
    limit = max_bytes(kind, overall)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - handed to the caller
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > limit:
                check_size(kind, size, overall)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise InvalidMedia("the media is empty")
        if not content_matches(mime, head):
            raise InvalidMedia(
                f"the bytes are not a {mime} file", details={"mime": mime}, code="media_content_mismatch"
            )
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Received(file=spool, size=size, sha256=digest.hexdigest(), mime=mime, type=kind)
