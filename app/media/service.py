"""Media of the API: uploads, the media of a send (an upload or a URL), a message's media download, and the
tenant's retention setting. Bytes go to the storage (app/media/storage.py); rows describe them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.subject import AuthSubject
from app.config import Settings
from app.media.errors import (
    MediaExpired,
    MediaNotAvailable,
    RangeNotSatisfiable,
    UploadNotFound,
)
from app.media.fetch import FetchPolicy, fetch
from app.media.intake import Received, check_type, receive
from app.media.limits import MediaType, base_mime, type_for
from app.media.repository import UploadRepository
from app.media.schemas import MediaSettings, MediaSettingsUpdate, SendMedia
from app.media.storage import MediaNotFound, MediaStorage, outbound_key, upload_key
from app.messages.service import message as message_service
from app.models import Tenant, Upload

# The states of a message's `media.state` (docs/contracts.md).
PENDING, STORED, FAILED, EXPIRED = "pending", "stored", "failed", "expired"


@dataclass
class MediaStream:
    """What the download route answers: the status, headers and the body's chunks."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    media_type: str = "application/octet-stream"


def media_path(store_id: uuid.UUID, message_id: uuid.UUID) -> str:
    return f"/v1/stores/{store_id}/messages/{message_id}/media"


def _clean_file_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = "".join(ch for ch in name if ch.isprintable() and ch not in '/\\"').strip()
    return cleaned[:255] or None


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    error = RangeNotSatisfiable(f"the range is outside the media's {size} bytes", details={"size": size})
    error.headers = {"Content-Range": f"bytes */{size}"}
    return error


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for, inclusive; None for the whole object (no header, several ranges, or a
    header that is not a byte range: RFC 9110 lets a server ignore those). Raises when it starts past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":  # the last N bytes
            suffix = int(last)
            if suffix <= 0:
                raise _unsatisfiable(size)
            return max(0, size - suffix), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    if end < start:
        return None
    return start, min(end, size - 1)


class MediaService:
    # --- uploads -------------------------------------------------------------------------------------------
    async def create_upload(
        self,
        session: AsyncSession,
        storage: MediaStorage,
        settings: Settings,
        *,
        subject: AuthSubject,
        chunks: AsyncIterator[bytes],
        content_type: str | None,
        content_length: int | None,
        kind: MediaType | None,
        file_name: str | None,
    ) -> Upload:
        mime = base_mime(content_type)
        kind = kind or type_for(mime)
        received = await receive(
            chunks, kind=kind, mime=mime, overall=settings.media_max_bytes, declared_size=content_length
        )
        upload_id = uuid.uuid4()
        key = upload_key(subject.tenant.id, upload_id)
        try:
            await storage.put(key, received.file, content_type=mime)
        finally:
            received.close()
        upload = Upload(
            id=upload_id,
            tenant_id=subject.tenant.id,
            store_id=subject.store_id,
            type=kind,
            mime=mime,
            size=received.size,
            sha256=received.sha256,
            file_name=_clean_file_name(file_name),
            storage_key=key,
            expires_at=datetime.now(UTC) + timedelta(hours=settings.media_upload_ttl_hours),
        )
        return await UploadRepository.for_tenant(session, subject.tenant.id).create(upload)

    # --- sending -------------------------------------------------------------------------------------------
    async def prepare_send(
        self,
        session: AsyncSession,
        storage: MediaStorage,
        settings: Settings,
        *,
        tenant_id: uuid.UUID,
        store_id: uuid.UUID,
        media: SendMedia,
        caption: str | None,
    ) -> tuple[MediaType, dict[str, Any]]:
        """The message type and the `media` JSON of an outbound message, its bytes already in the storage under
        a key of their own (so that the upload may be sent again, and expire, independently)."""
        key = outbound_key(store_id, uuid.uuid4())
        if media.upload_id is not None:
            upload = await UploadRepository.for_tenant(session, tenant_id).get_usable(
                media.upload_id, now=datetime.now(UTC)
            )
            if upload is None or (upload.store_id is not None and upload.store_id != store_id):
                raise UploadNotFound(
                    f"no upload {media.upload_id} that this store can send (uploads expire after "
                    f"{settings.media_upload_ttl_hours:g} h)"
                )
            kind: MediaType = media.type or upload.type  # type: ignore[assignment]
            check_type(kind, upload.mime)
            try:
                await storage.copy(upload.storage_key, key)
            except MediaNotFound as exc:
                raise UploadNotFound(f"upload {media.upload_id} has expired") from exc
            mime, size, sha256 = upload.mime, upload.size, upload.sha256
            file_name = media.file_name or upload.file_name
        else:
            policy = FetchPolicy(
                timeout_seconds=settings.media_fetch_timeout_seconds,
                max_bytes=settings.media_max_bytes,
                allow_private=settings.media_fetch_allow_private,
            )
            received: Received
            received, fetched_name = await fetch(str(media.url), kind=media.type, policy=policy)
            try:
                await storage.put(key, received.file, content_type=received.mime)
            finally:
                received.close()
            kind, mime, size, sha256 = received.type, received.mime, received.size, received.sha256
            file_name = media.file_name or fetched_name
        return kind, {
            "state": STORED,
            "key": key,
            "mimetype": mime,
            "size": size,
            "sha256": sha256,
            "caption": caption,
            "file_name": _clean_file_name(file_name),
        }

    # --- a message's media ---------------------------------------------------------------------------------
    async def open_message_media(
        self,
        session: AsyncSession,
        storage: MediaStorage,
        *,
        tenant: Tenant,
        store_id: str,
        message_id: str,
        range_header: str | None,
    ) -> MediaStream:
        found = await message_service.find(session, tenant=tenant, store_id=store_id, message_id=message_id)
        media = found[0].media or {}
        state = media.get("state")
        if state == EXPIRED:
            raise MediaExpired(
                "this message's media was deleted by the tenant's retention setting",
                details={"expired_at": media.get("expired_at")},
            )
        if state != STORED or not media.get("key"):
            message = {
                PENDING: "this message's media is not downloaded yet: try again shortly",
                FAILED: "this message's media could not be downloaded from WhatsApp",
            }.get(str(state), "this message has no media")
            raise MediaNotAvailable(message, details={"state": state})
        key = str(media["key"])
        try:
            size = await storage.size(key)
        except MediaNotFound as exc:
            raise MediaNotAvailable("this message's media is gone", details={"state": state}) from exc
        mime = str(media.get("mimetype") or "application/octet-stream")
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
        if media.get("sha256"):
            headers["ETag"] = f'"{media["sha256"]}"'
        name = _clean_file_name(media.get("file_name"))
        if name:
            ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
            headers["Content-Disposition"] = f'inline; filename="{ascii_name}"'
        if size == 0:
            return MediaStream(200, {**headers, "Content-Length": "0"}, _empty(), mime)
        wanted = parse_range(range_header, size)
        if wanted is None:
            start, end, status = 0, size - 1, 200
        else:
            (start, end), status = wanted, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        return MediaStream(status, headers, storage.read_range(key, start, end), mime)

    # --- settings ------------------------------------------------------------------------------------------
    def settings_of(self, tenant: Tenant) -> MediaSettings:
        return MediaSettings(retention_days=tenant.media_retention_days)

    async def update_settings(
        self, session: AsyncSession, *, tenant: Tenant, update: MediaSettingsUpdate
    ) -> MediaSettings:
        await UploadRepository.for_tenant(session, tenant.id).set_retention_days(update.retention_days)
        return MediaSettings(retention_days=update.retention_days)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


media = MediaService()
