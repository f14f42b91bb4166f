"""The neonize driver: one per process, shared by every store the process owns.

It holds what the connections share: the Go-map guard, the store cap, the pinned event loop and its executor,
the auth store, the background tasks of finished attempts and the finished clients Go may still call back.
Too many clients in one process is a danger of its own (each pins an executor thread and opens a database
pool; a Go panic takes every store of the process down): cap the stores per process, supervise and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Awaitable
from typing import Any

import structlog

from sessions.drivers.base import Driver, DriverError, EventCallback
from sessions.drivers.neonize.auth_store import AuthStore, whatsmeow_postgres_url
from sessions.drivers.neonize.connection import NeonizeConnection
from sessions.drivers.neonize.runtime import GoMapGuard, new_message_id, pin_loop

log = structlog.get_logger(__name__)

# A finished attempt's ctypes callbacks stay referenced this long: Go may still call them briefly.
RETAIN_SECONDS = 300.0


class NeonizeDriver(Driver):
    """One per process. `max_stores` caps the live connections; `executor_workers` sizes the event loop's
    default executor (each live client pins one of its threads for its whole life, and a stopped client that
    was still pairing keeps its thread until whatsmeow's QR rotation ends, up to 160 s later)."""

    name = "neonize"

    def __init__(
        self,
        database_url: str,
        *,
        max_stores: int = 100,
        executor_workers: int | None = None,
        qr_timeout_seconds: float = 160,
        group_messages: bool = False,
        own_messages: bool = False,
        connect_timeout_seconds: float = 60,
    ) -> None:
        if max_stores < 1:
            raise ValueError("max_stores must be at least 1")
        self.database_url = database_url
        whatsmeow_postgres_url(database_url)  # refuse a non-PostgreSQL URL now, not at the first connect
        self.max_stores = max_stores
        self.executor_workers = executor_workers or 2 * max_stores + 32
        self.qr_timeout_seconds = qr_timeout_seconds
        self.group_messages = group_messages
        self.own_messages = own_messages
        self.connect_timeout_seconds = connect_timeout_seconds
        # Tells this process's database sessions apart from another process's (application_name).
        self.token = secrets.token_hex(3)
        self.guard = GoMapGuard()
        self.auth = AuthStore(database_url)
        self.live: set[NeonizeConnection] = set()
        self._retired: set[Any] = set()  # finished clients whose ctypes callbacks Go may still call
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection(self, store_id: uuid.UUID, on_event: EventCallback) -> NeonizeConnection:
        return NeonizeConnection(self, store_id, on_event)

    async def start(self) -> None:
        self.bind_loop()

    def bind_loop(self) -> asyncio.AbstractEventLoop:
        """neonize dispatches every Go callback to one event loop per process, fixed at its first connect;
        its calls run in the loop's default executor, which must hold a thread per live client."""
        self._loop = pin_loop(self._loop, self.executor_workers)
        return self._loop

    async def close(self) -> None:
        stopping = list(self.live)
        for conn in stopping:
            with contextlib.suppress(Exception):
                await conn.stop()
        # Their blocking neonize calls return shortly after a stop (a client stopped while pairing: only when
        # whatsmeow's QR rotation ends, which is also how long the process may wait for that thread at exit).
        running = [c._task for c in stopping if c._task is not None and not c._task.done()]
        if running:
            await asyncio.wait(running, timeout=5)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        await self.auth.close()

    def new_message_id(self) -> str:
        return new_message_id(self.guard)

    # --- bookkeeping used by the connections ---------------------------------------------------------------
    def reserve(self, conn: NeonizeConnection) -> None:
        if conn not in self.live and len(self.live) >= self.max_stores:
            raise DriverError(f"store cap reached ({self.max_stores} per process)", retryable=True)
        self.live.add(conn)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def retire(self, client: Any) -> None:
        """Keep a finished client (and so its ctypes callbacks) referenced a while, then let it go."""
        self._retired.add(client)
        loop = self._loop or asyncio.get_running_loop()
        loop.call_later(RETAIN_SECONDS, self._retired.discard, client)

    async def end_sessions(self, application_name: str) -> None:
        try:
            ended = await self.auth.end_sessions(application_name)
        except Exception as exc:
            log.warning(
                "could not end a finished attempt's database sessions", app=application_name, error=str(exc)
            )
            return
        if ended:
            log.debug("ended a finished attempt's database sessions", app=application_name, count=ended)
