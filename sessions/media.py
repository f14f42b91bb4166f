"""Inbound media: downloaded from WhatsApp into the storage after the message is durable, beside its handling.

The inbound insert stores a media message with `media.state = pending` and the driver's download reference
(`media.fetch`); the message goes to the worker at once, like any other, so the bot never waits for a file.
Once committed, the message is handed here (`queue`, which never blocks); a few tasks download, store the
bytes (`stores/<store>/in/<message>`) and mark the row `stored`. A failed download is retried with backoff
(`media.next_at`), up to `media_download_attempts`, then marked `failed`; a download the network says can never
work (the media expired on WhatsApp's servers) fails at once. A sweep finds pending rows of the owned stores
whose retry is due, or that a restart left behind, so nothing depends on the in-memory queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from app.config import Settings
from app.kit.batching import GroupCommit
from app.kit.db import AsyncSessionMaker, single_statement, transaction
from app.kit.loops import every
from app.media.storage import MediaStorage, inbound_key
from sessions.drivers.base import DriverError, InboundMessage
from sessions.repository import MediaStored, MediaToDownload, SessionsRepository

log = structlog.get_logger(__name__)

DOWNLOAD_TIMEOUT_SECONDS = 120.0
RETRY_CAP_SECONDS = 600.0
SWEEP_BATCH = 200


class DownloadingConnection(Protocol):
    async def download_media(self, kind: str, fetch: dict[str, object]) -> bytes: ...


class DownloadingSession(Protocol):
    @property
    def connection(self) -> DownloadingConnection: ...

    @property
    def connected(self) -> asyncio.Event: ...


class MediaDownloader:
    def __init__(
        self,
        sessionmaker: AsyncSessionMaker,
        storage: MediaStorage,
        settings: Settings,
        *,
        session_for: Callable[[uuid.UUID], DownloadingSession | None],
        owned: Callable[[], list[uuid.UUID]],
        retry_base_seconds: float = 5.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.storage = storage
        self.settings = settings
        self.session_for = session_for
        self.owned = owned
        self.retry_base_seconds = retry_base_seconds
        self._queue: asyncio.Queue[MediaToDownload] = asyncio.Queue()
        self._busy: set[uuid.UUID] = set()  # queued or downloading: the sweep does not queue them twice
        # The rows of downloads stored meanwhile are marked together, one statement per round.
        self._stored: GroupCommit[MediaStored, None] = GroupCommit(self._mark_stored)
        self.stored = 0  # downloads stored (logs, tests)

    def saved(self, store_id: uuid.UUID, message_id: uuid.UUID, message: InboundMessage) -> None:
        """The inbound recorder committed this message: download its media soon. Never blocks, never raises."""
        if message.media is not None:
            self.queue(MediaToDownload(store_id, message_id, message.type, message.media))

    def queue(self, job: MediaToDownload) -> None:
        if job.message_id not in self._busy:
            self._busy.add(job.message_id)
            self._queue.put_nowait(job)

    def close(self) -> None:
        self._stored.close()

    async def _mark_stored(self, stored: list[MediaStored]) -> list[None]:
        async with single_statement(self.sessionmaker) as db:
            await SessionsRepository(db).media_stored(stored)
        return [None] * len(stored)

    async def run(self) -> None:
        workers = [asyncio.create_task(self._work()) for _ in range(self.settings.media_download_concurrency)]
        sweeper = asyncio.create_task(every(self.sweep, self.settings.sessions_reconcile_seconds, log))
        try:
            await asyncio.gather(*workers, sweeper)
        finally:
            for task in (*workers, sweeper):
                task.cancel()

    async def sweep(self) -> None:
        store_ids = self.owned()
        if not store_ids:
            return
        async with transaction(self.sessionmaker) as db:
            due = await SessionsRepository(db).pending_media(store_ids, SWEEP_BATCH)
        for job in due:
            self.queue(job)

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.download(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # PostgreSQL or the storage away: the row stays pending, the sweep retries it
                log.warning(
                    "media download failed; left for the sweep", message_id=str(job.message_id), exc_info=True
                )
            finally:
                self._busy.discard(job.message_id)

    async def download(self, job: MediaToDownload) -> None:
        """Download, store, mark. The row is updated only while still `pending`: a stale job (another manager
        stored it meanwhile) costs a download and changes nothing."""
        store_id, message_id, found = job.store_id, job.message_id, job
        session = self.session_for(store_id)
        if session is None or not session.connected.is_set():
            return  # not ours, or not connected now: the sweep of whoever holds it tries again
        fetch = found.media.get("fetch")
        attempts = int(found.media.get("attempts") or 0) + 1
        try:
            if not isinstance(fetch, dict):
                raise DriverError("no download reference", retryable=False)
            async with asyncio.timeout(DOWNLOAD_TIMEOUT_SECONDS):
                data = await session.connection.download_media(found.type, fetch)
        except (DriverError, TimeoutError) as exc:
            retryable = not isinstance(exc, DriverError) or exc.retryable
            await self._not_downloaded(message_id, attempts, str(exc) or "timed out", retryable)
            return
        key = inbound_key(store_id, message_id)
        mime = str(found.media.get("mimetype") or "application/octet-stream")
        await self.storage.put(key, data, content_type=mime)
        await self._stored.submit(MediaStored(message_id, key, len(data), hashlib.sha256(data).hexdigest()))
        self.stored += 1

    async def _not_downloaded(
        self, message_id: uuid.UUID, attempts: int, error: str, retryable: bool
    ) -> None:
        async with transaction(self.sessionmaker) as db:
            repository = SessionsRepository(db)
            if retryable and attempts < self.settings.media_download_attempts:
                delay = min(RETRY_CAP_SECONDS, self.retry_base_seconds * 2 ** (attempts - 1))
                next_at = datetime.now(UTC) + timedelta(seconds=delay)
                await repository.media_not_yet(message_id, attempts=attempts, error=error, next_at=next_at)
                log.info("media download failed; will retry", message_id=str(message_id), error=error)
            else:
                await repository.media_failed(message_id, attempts=attempts, error=error)
                log.warning("media download failed for good", message_id=str(message_id), error=error)
