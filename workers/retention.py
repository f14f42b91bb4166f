"""The media retention job: deletes media files older than their tenant's `media_retention_days`, and uploads
past their `expires_at`. Run by the worker every `media_retention_check_seconds`, by one worker at a time (a
Redis key taken with SET NX for most of the interval: replicas do not repeat each other's round).

Objects are deleted before their rows say so: a crash in between leaves rows that still say `stored`, which the
next round deletes again (deleting a missing object is not an error), never a row that says `expired` over an
object nobody will delete. A message whose media expired keeps its metadata; its `media.state` says `expired`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import MEDIA_RETENTION_LOCK_KEY
from app.kit.db import AsyncSessionMaker, transaction
from app.media.storage import MediaStorage

log = structlog.get_logger(__name__)

BATCH = 500

# The `created_at` bound that does not depend on the tenant (1 day, the smallest retention) lets the partial
# index `ix_messages_media_kept` serve the scan.
_EXPIRED_MEDIA = text("""
SELECT m.id, m.media ->> 'key' AS key
FROM messages m
JOIN stores s ON s.id = m.store_id
JOIN tenants t ON t.id = s.tenant_id
WHERE t.media_retention_days IS NOT NULL
  AND m.media ->> 'state' IN ('pending', 'stored', 'failed')
  AND m.created_at < CAST(:now AS timestamptz) - interval '1 day'
  AND m.created_at < CAST(:now AS timestamptz) - make_interval(days => t.media_retention_days)
ORDER BY m.created_at
LIMIT :limit
""")
_MARK_EXPIRED = text("""
UPDATE messages
SET media = (media - 'key' - 'fetch' - 'next_at')
            || jsonb_build_object('state', 'expired', 'expired_at', CAST(:now AS timestamptz))
WHERE id = ANY(CAST(:ids AS uuid[])) AND media ->> 'state' IN ('pending', 'stored', 'failed')
""")
_EXPIRED_UPLOADS = text("""
SELECT id, storage_key AS key FROM uploads WHERE expires_at < CAST(:now AS timestamptz)
ORDER BY expires_at LIMIT :limit
""")
_DELETE_UPLOADS = text("DELETE FROM uploads WHERE id = ANY(CAST(:ids AS uuid[]))")


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def expired_media(self, now: datetime, limit: int) -> list[tuple[uuid.UUID, str | None]]:
        rows = await self.session.execute(_EXPIRED_MEDIA, {"now": now, "limit": limit})
        return [(row.id, row.key) for row in rows]

    async def mark_expired(self, ids: list[uuid.UUID], now: datetime) -> None:
        await self.session.execute(_MARK_EXPIRED, {"ids": ids, "now": now})

    async def expired_uploads(self, now: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
        rows = await self.session.execute(_EXPIRED_UPLOADS, {"now": now, "limit": limit})
        return [(row.id, row.key) for row in rows]

    async def delete_uploads(self, ids: list[uuid.UUID]) -> None:
        await self.session.execute(_DELETE_UPLOADS, {"ids": ids})


@dataclass
class RetentionReport:
    expired_messages: int = 0
    deleted_uploads: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MediaRetention:
    def __init__(
        self,
        sessionmaker: AsyncSessionMaker,
        storage: MediaStorage,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.storage = storage
        self.clock = clock  # tests move it

    async def run_once(self) -> RetentionReport:
        now = self.clock()
        report = RetentionReport()
        while True:
            async with transaction(self.sessionmaker) as session:
                due = await RetentionRepository(session).expired_media(now, BATCH)
            for _message_id, key in due:
                if key:
                    await self.storage.delete(key)
            if due:
                async with transaction(self.sessionmaker) as session:
                    await RetentionRepository(session).mark_expired([d[0] for d in due], now)
                report.expired_messages += len(due)
            if len(due) < BATCH:
                break
        while True:
            async with transaction(self.sessionmaker) as session:
                uploads = await RetentionRepository(session).expired_uploads(now, BATCH)
            for _upload_id, key in uploads:
                await self.storage.delete(key)
            if uploads:
                async with transaction(self.sessionmaker) as session:
                    await RetentionRepository(session).delete_uploads([u[0] for u in uploads])
                report.deleted_uploads += len(uploads)
            if len(uploads) < BATCH:
                break
        if report.expired_messages or report.deleted_uploads:
            log.info("media retention", **report.__dict__)
        return report

    async def run_if_first(self, redis: Redis, interval_seconds: float) -> RetentionReport | None:
        """One round, unless another worker ran one in this interval."""
        token: Any = secrets.token_hex(8)
        ttl_ms = max(1000, int(interval_seconds * 900))  # 90 % of the interval
        if not await redis.set(MEDIA_RETENTION_LOCK_KEY, token, nx=True, px=ttl_ms):
            return None
        return await self.run_once()
