"""Long-poll of the changes feed: one poller per API process for every waiting request.

A request whose page came back empty waits here for news of its store (events after its position, of its
kinds, below the visibility horizon: exactly what would make its next page non-empty). While anyone waits,
one task asks PostgreSQL every `changes_poll_interval_ms` which of the waiting readers have news, with one
statement of one index probe per distinct reader, and wakes them. Nobody waiting: no task, no query.

Why not LISTEN/NOTIFY: a NOTIFY in the triggers that write the log would take a lock held until commit that
serialises every committing transaction of the server (the inbound hot path included); and a notification
does not say when the horizon passes a row anyway. Polling from here costs one cheap query per tick per API
process, whatever the number of waiting clients, and the latency added is at most one tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from app.events.repository import EventPosition, waiters_with_news
from app.kit.db import AsyncSessionMaker

log = structlog.get_logger(__name__)

Kinds = tuple[str, ...] | None


@dataclass(eq=False)  # hashed by identity: two readers at one position are two waiters
class _Waiter:
    store_id: uuid.UUID
    position: EventPosition
    kinds: Kinds
    woken: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ChangesWaiter:
    def __init__(self, sessionmaker: AsyncSessionMaker, *, interval_seconds: float) -> None:
        self.sessionmaker = sessionmaker
        self.interval = interval_seconds
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task[None] | None = None

    async def wait(
        self, store_id: uuid.UUID, position: EventPosition, kinds: Sequence[str] | None, timeout: float
    ) -> bool:
        """Return True as soon as the store has an event after `position` (of `kinds`) to read, False when
        `timeout` seconds passed first."""
        waiter = _Waiter(store_id, position, tuple(sorted(kinds)) if kinds is not None else None)
        self._waiters.add(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll_while_waited(), name="changes-poller")
        try:
            await asyncio.wait_for(asyncio.shield(waiter.woken), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll_while_waited(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
            except (
                Exception
            ):  # PostgreSQL away for a moment: the waiters time out or the next tick wakes them
                log.warning("polling the change log for waiting readers failed", exc_info=True)

    async def poll_once(self) -> None:
        """Wake every waiter whose store has news. Readers of one store and kinds share one probe, from the
        earliest position among them (a later reader with nothing new is woken once and waits again)."""
        waiting = [w for w in self._waiters if not w.woken.done()]
        if not waiting:
            return
        earliest: dict[tuple[uuid.UUID, Kinds], EventPosition] = {}
        for w in waiting:
            key = (w.store_id, w.kinds)
            earliest[key] = min(earliest.get(key, w.position), w.position)
        keys = list(earliest)
        async with self.sessionmaker() as session:
            news = await waiters_with_news(
                session, [(store_id, earliest[(store_id, kinds)], kinds) for store_id, kinds in keys]
            )
        woken = {keys[n] for n in news}
        for w in waiting:
            if (w.store_id, w.kinds) in woken and not w.woken.done():
                w.woken.set_result(None)
