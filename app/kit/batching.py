"""Group commit: many concurrent callers, one round trip.

Each caller submits one item and waits for its own result. Items submitted while a flush is in flight wait
for the next flush, which takes them all (up to `max_batch`). Alone, an item is flushed at once; under load
a flush carries hundreds. This is what lets one Python process keep up with a thousand messages a second:
the cost of a transaction is paid per batch, not per message.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# At a steady few hundred messages a second, flushing each item as it comes cost a transaction per item: the
# fixed cost of a flush, not the items, used the CPU. Waiting this long first costs that much latency per stage.
LINGER = 0.003

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    result: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 1000,
        fail_waiting: bool = False,
        linger: float = LINGER,
    ) -> None:
        """`flush` returns one result per item, in order. With `fail_waiting`, a failed flush fails everything
        submitted behind it too: callers that must not see a later item succeed where an earlier one failed
        (a chat's messages, committed in order) ask for it. `linger`: how long a flush that is not full waits
        for more items; a few milliseconds turn a steady trickle into batches."""
        self._flush = flush
        self.max_batch = max_batch
        self.fail_waiting = fail_waiting
        self.linger = linger
        self._waiting: list[_Waiting[T, R]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        # Not shielded: a caller that gives up cancels only its own future; the flush goes on without it.
        return await self.submit_nowait(item)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queue the item; the future resolves with its result. Items queued in order are flushed in order."""
        waiting: _Waiting[T, R] = _Waiting(item)
        self._waiting.append(waiting)
        if self._flusher is None or self._flusher.done():
            # A context of its own: a batch serves many stores and chats, so its log lines must not carry the
            # store/chat/message ids the first submitter bound (structlog contextvars, app/kit/lanes.py).
            self._flusher = asyncio.create_task(self._flush_all(), context=contextvars.Context())
        return waiting.result

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

    async def _flush_all(self) -> None:
        while self._waiting:
            if self.linger and len(self._waiting) < self.max_batch:
                await asyncio.sleep(self.linger)
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            try:
                results = await self._flush([w.item for w in batch])
            except BaseException as exc:
                failed = batch
                if self.fail_waiting or not isinstance(exc, Exception):
                    failed, self._waiting = batch + self._waiting, []
                error = exc if isinstance(exc, Exception) else RuntimeError("stopped before the flush ended")
                for waiting in failed:
                    if not waiting.result.done():
                        waiting.result.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                continue
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.result.done():
                    waiting.result.set_result(result)
