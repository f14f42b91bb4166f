"""A keyed lane executor: per key (store, chat) a FIFO lane run strictly in order, different keys concurrently.

Stock taskiq runs every message as its own task, so a chat's messages can finish out of order (measured: 368
inversions in 2,000 messages). Here each key has a lane whose items run one run at a time; a semaphore bounds
how many lanes run at once. A lane's task exists only while the lane holds items: a chat seen once costs
nothing once it is served.

- Runs: consecutive items of a lane that `batchable` accepts go to the handler together (up to `run_max`):
  a chat that fell behind catches up in a few transactions instead of one per item.
- Backpressure: `room()` waits while any lane holds `buffer` items or more.
- Policy (`Retry`): an item that fails is retried inside its lane (so its key keeps its order) up to
  `attempts` times with a backoff, then handed to `dead` and counted done; a failing run is split and its
  items handled one by one, so only the failing one is retried. Errors that `transient` recognises (the
  servers', not the item's) are retried without counting. Raising `Unprocessable` skips the retries. Without
  a policy a failure is logged and the run is left undone (not passed to `done`).
- `done` (an acknowledgement) follows a run's success; it and `dead` are insisted on until they succeed.
- Stores: `drop_store` cancels and forgets a store's lanes at once, even mid-run (its lease is gone; nothing
  more may be done for it); `drain_stores` starts no new run for them and lets the runs in flight end first.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
Key = tuple[uuid.UUID, str]  # (store, chat)

INSIST_DELAY_MAX = 5.0


class Unprocessable(Exception):
    """Raised by a handler for an item nothing can ever handle (not a task, say): dead-lettered at once."""


def _never(_: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class Retry:
    attempts: int
    delays: Sequence[float] = (0.2, 1.0, 3.0)  # before the 2nd, 3rd... attempt; the last one repeats
    transient: Callable[[BaseException], bool] = _never
    transient_delay: float = 0.1  # doubles up to transient_delay_max
    transient_delay_max: float = 5.0


@dataclass
class _Lane(Generic[T]):
    items: deque[T] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    running: bool = False  # inside the handler (or its done/dead steps)


class Lanes(Generic[T]):
    def __init__(
        self,
        handle: Callable[[Key, list[T]], Awaitable[None]],
        *,
        concurrency: int | None = None,
        buffer: int | None = None,
        run_max: int = 1,
        batchable: Callable[[T], bool] | None = None,
        retry: Retry | None = None,
        done: Callable[[Key, list[T]], Awaitable[None]] | None = None,
        dead: Callable[[Key, T, BaseException], Awaitable[None]] | None = None,
    ) -> None:
        self.handle = handle
        self.buffer = buffer
        self.run_max = run_max
        self.batchable = batchable or (lambda _: True)
        self.retry = retry
        self.done = done
        self.dead = dead
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._lanes: dict[Key, _Lane[T]] = {}
        self._draining: set[uuid.UUID] = set()
        # Lanes holding `buffer` items or more: reading waits while there is one (O(1) per item, where
        # scanning every lane after each item cost a fifth of the CPU with 2,000 chats buffered).
        self._full: set[Key] = set()
        self._room = asyncio.Event()
        self._room.set()
        self.completed = 0  # items done (handled, or dead-lettered)

    # --- feeding -------------------------------------------------------------------------------------------
    def put(self, key: Key, item: T) -> bool:
        """Queue the item at the end of its lane. False (and nothing queued) for a store being drained."""
        if key[0] in self._draining:
            return False
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.items.append(item)
        if self.buffer is not None and len(lane.items) >= self.buffer:
            self._full.add(key)
            self._room.clear()
        if lane.task is None:
            lane.task = asyncio.create_task(self._run_lane(key, lane))
        return True

    async def room(self) -> None:
        """Return once no lane holds `buffer` items or more."""
        await self._room.wait()

    # --- stores --------------------------------------------------------------------------------------------
    def drop_store(self, store_id: uuid.UUID) -> None:
        """Forget the store's lanes and cancel their tasks, mid-run too: nothing more is done for them."""
        self._draining.discard(store_id)
        for key in [k for k in self._lanes if k[0] == store_id]:
            lane = self._lanes.pop(key)
            self._full.discard(key)
            if lane.task is not None:
                lane.task.cancel()
        self._update_room()

    async def drain_stores(self, store_ids: Iterable[uuid.UUID], timeout: float) -> int:
        """Start no new run for these stores and wait (up to `timeout`) for their runs in flight. Idle lanes
        are forgotten at once. Returns how many runs were still in flight at the timeout (call `drop_store`
        afterwards to cut them short)."""
        stores = set(store_ids)
        self._draining |= stores
        busy = []
        for key in [k for k in self._lanes if k[0] in stores]:
            lane = self._lanes[key]
            if lane.running and lane.task is not None:
                busy.append(lane.task)  # ends after its current run (see _run_lane)
            else:
                del self._lanes[key]
                self._full.discard(key)
                if lane.task is not None:
                    lane.task.cancel()
        self._update_room()
        if not busy:
            return 0
        _, late = await asyncio.wait(busy, timeout=timeout)
        return len(late)

    async def wait_idle(self, timeout: float) -> bool:
        """Let the lanes finish what they hold (bounded); True when they all did."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return not self._lanes

    def close(self) -> None:
        for store_id in {key[0] for key in self._lanes}:
            self.drop_store(store_id)

    def lanes(self) -> int:
        return len(self._lanes)

    def holds(self, key: Key) -> bool:
        """Whether the key's lane has items queued or running."""
        return key in self._lanes

    # --- running -------------------------------------------------------------------------------------------
    async def _run_lane(self, key: Key, lane: _Lane[T]) -> None:
        # The lane's task has a context of its own: every line logged while it runs names the store and chat.
        structlog.contextvars.bind_contextvars(store_id=str(key[0]), chat=key[1])
        try:
            while lane.items and key[0] not in self._draining and self._lanes.get(key) is lane:
                run = self._next_run(lane.items)
                if self._slots is not None:
                    async with self._slots:
                        await self._run_once(key, lane, run)
                else:
                    await self._run_once(key, lane, run)
                for _ in run:
                    lane.items.popleft()
                if self.buffer is None or len(lane.items) < self.buffer:
                    self._full.discard(key)
                    self._update_room()
        finally:
            lane.task = None
            if self._lanes.get(key) is lane and (not lane.items or key[0] in self._draining):
                del self._lanes[key]  # idle (or drained): the lane ends with its task
                self._full.discard(key)
                self._update_room()
                if not self._lanes:
                    # A dict keeps the table of its peak size (10,000 chats: half a megabyte): start afresh.
                    self._lanes = {}

    async def _run_once(self, key: Key, lane: _Lane[T], run: list[T]) -> None:
        lane.running = True
        try:
            if self.retry is None:
                try:
                    await self.handle(key, run)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("a lane's run failed; left undone", key=key, size=len(run), exc_info=True)
                    return
                await self._done(key, run)
            elif len(run) == 1 or not await self._attempt_run(key, run, self.retry):
                # One at a time: only the failing item is retried and dead-lettered (a handler with
                # idempotent effects skips what the run committed already).
                for item in run:
                    await self._attempt_item(key, item, self.retry)
        finally:
            lane.running = False

    def _next_run(self, items: deque[T]) -> list[T]:
        """The lane's leading items that go together: up to `run_max`, while `batchable` accepts them."""
        run = [items[0]]
        if self.run_max <= 1 or not self.batchable(items[0]):
            return run
        for item in itertools.islice(items, 1, self.run_max):
            if not self.batchable(item):
                break
            run.append(item)
        return run

    async def _attempt_run(self, key: Key, run: list[T], retry: Retry) -> bool:
        """The whole run at once (transient errors aside); False when it failed by its own fault."""
        delay = retry.transient_delay
        while True:
            try:
                await self.handle(key, run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if retry.transient(exc):
                    log.warning(
                        "infrastructure error; retrying", error=str(exc)[:200], key=key, size=len(run)
                    )
                    await asyncio.sleep(delay)
                    delay = min(retry.transient_delay_max, delay * 2)
                    continue
                log.info("a run failed; handling its items one by one", key=key, error=repr(exc)[:300])
                return False
            await self._done(key, run)
            return True

    async def _attempt_item(self, key: Key, item: T, retry: Retry) -> None:
        failures = 0
        delay = retry.transient_delay
        while True:
            try:
                await self.handle(key, [item])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if retry.transient(exc) and not isinstance(exc, Unprocessable):
                    log.warning("infrastructure error; retrying", error=str(exc)[:200], key=key)
                    await asyncio.sleep(delay)
                    delay = min(retry.transient_delay_max, delay * 2)
                    continue
                failures += 1
                log.warning("handler failed", key=key, attempt=failures, error=repr(exc)[:300])
                if failures >= retry.attempts or isinstance(exc, Unprocessable):
                    await self._dead(key, item, exc)
                    return
                await asyncio.sleep(
                    retry.delays[min(failures - 1, len(retry.delays) - 1)] if retry.delays else 0
                )
                continue
            await self._done(key, [item])
            return

    async def _done(self, key: Key, run: list[T]) -> None:
        done = self.done
        if done is not None:
            # Effects committed: the acknowledgement must follow, or they are applied again after a restart.
            try:
                await done(key, run)
            except asyncio.CancelledError:
                raise
            except Exception:
                await _insist(lambda: done(key, run), "acknowledging", key)
        self.completed += len(run)

    async def _dead(self, key: Key, item: T, error: BaseException) -> None:
        dead = self.dead
        if dead is not None:
            # A lane whose dead-lettering failed would stop, its chat stuck: insist, like the ack.
            await _insist(lambda: dead(key, item, error), "dead-lettering", key)
        await self._done(key, [item])

    def _update_room(self) -> None:
        if not self._full:
            self._room.set()


async def _insist(step: Callable[[], Awaitable[None]], what: str, key: Key) -> None:
    """Retry `step` with a capped backoff until it succeeds (a dropped store cancels the lane meanwhile)."""
    delay = 0.1
    while True:
        try:
            await step()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning(f"{what} failed; retrying", key=key, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(INSIST_DELAY_MAX, delay * 2)
