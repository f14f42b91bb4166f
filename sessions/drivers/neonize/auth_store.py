"""whatsmeow's auth state in PostgreSQL: the URL neonize is given, and the few queries made on whatsmeow's tables.

- A client `name` starting with `postgres` selects whatsmeow's PostgreSQL store (through lib/pq, which wants
  `postgres://user:pass@host:port/db?sslmode=...`); anything else would be a SQLite file path.
- whatsmeow creates and migrates its own `whatsmeow_*` tables on its first connect (migrations never touch
  them): until then they do not exist, and the queries here say "no device" instead of failing.
- Every connect attempt opens its own database pool that neonize never closes: each attempt gets a unique
  `application_name`, and once the attempt is over its sessions are ended with `pg_terminate_backend`
  (`AuthStore.end_sessions`), so reconnects do not leak PostgreSQL connections.
- Resuming a device JID the store does not hold crashes the whole process (nil pointer in
  whatsmeow.NewClient): `device_exists` is asked first.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.kit.db import create_engine


def whatsmeow_postgres_url(url: str, *, application_name: str | None = None) -> str:
    """The form whatsmeow's PostgreSQL store (lib/pq) needs: `postgres://user:pass@host:port/db?sslmode=...`.

    Accepts `postgresql://`, `postgres://` and SQLAlchemy's `postgresql+asyncpg://`; SSL is off unless the URL
    asks for it (lib/pq would otherwise require it); `connect_timeout` keeps a dead server from hanging."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise ValueError(f"the WhatsApp auth store needs a PostgreSQL URL, got {parts.scheme!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ssl = query.pop("ssl", None)  # asyncpg's spelling
    if "sslmode" not in query:
        query["sslmode"] = {"true": "require", "false": "disable"}.get(ssl.lower(), ssl) if ssl else "disable"
    query.setdefault("connect_timeout", "10")
    if application_name:
        query["application_name"] = application_name
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


class AuthStore:
    """Short SQL on whatsmeow's tables (not through neonize): does a device exist, forget one, end a finished
    attempt's database sessions."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._engine: AsyncEngine | None = None
        self._closed = False

    def _get_engine(self) -> AsyncEngine:
        if self._closed:
            raise RuntimeError("the WhatsApp driver is closed")
        if self._engine is None:
            self._engine = create_engine(self._url, pool_size=1, application_name="mostrador-whatsmeow-admin")
        return self._engine

    async def _has_devices_table(self, conn: AsyncConnection) -> bool:
        # whatsmeow creates its tables on its first connect; a query on a missing table would fail.
        return bool(await conn.scalar(text("SELECT to_regclass('whatsmeow_device') IS NOT NULL")))

    async def device_exists(self, device_jid: str) -> bool:
        async with self._get_engine().connect() as conn:
            if not await self._has_devices_table(conn):
                return False
            query = text("SELECT 1 FROM whatsmeow_device WHERE jid = :jid")
            return await conn.scalar(query, {"jid": device_jid}) is not None

    async def forget_device(self, device_jid: str) -> bool:
        """Delete the device and (by cascade) all its keys and sessions."""
        async with self._get_engine().begin() as conn:
            if not await self._has_devices_table(conn):
                return False
            result = await conn.execute(
                text("DELETE FROM whatsmeow_device WHERE jid = :jid"), {"jid": device_jid}
            )
            return bool(result.rowcount)

    async def end_sessions(self, application_name: str) -> int:
        query = text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name AND pid <> pg_backend_pid()"
        )
        async with self._get_engine().connect() as conn:
            return int(await conn.scalar(query, {"name": application_name}) or 0)

    async def close(self) -> None:
        self._closed = True
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
