"""One consumer of owned Redis streams: the worker's `messages:store-<id>` and the outbox's `outbox:store-<id>`.

A store's stream is read only by the holder of the store's lease, under one stable consumer name, so a new owner
finds what the previous owner left unacknowledged as its own pending entries (docs/architecture.md, invariant 2):
- `own` creates the stream's consumer group (`XGROUP CREATE ... MKSTREAM`; the owner, not the API, knows
  groups exist), then the stream's pending entries are replayed page by page (`0`, then after the last id
  read) until none is left; only then does the stream join the one blocking `>` read of every owned stream;
- entries of a stream disowned while a read was in flight are discarded: they stay pending for the next owner,
  who must replay only after that read is over (`settle`, before the lease is released);
- a NOGROUP reply (Redis lost its data, or the stream was deleted) recreates the groups; other error replies
  and lost connections are waited out, so reading outlives any Redis outage;
- acknowledgements are group-committed: the acks asked for during one round trip share the next pipeline.

On a Redis Cluster one XREADGROUP may only name streams of one hash slot: the owned streams are grouped by slot
(a store bucket's streams share one, app/contracts.py) and each group has its own blocking read in flight; a
read is never cancelled (the entries it was given would stay pending, unseen, until the next owner), so a read
still running when another returned is collected by a later call. Before a replay, every read in flight is
collected first, so that a replay never runs beside a `>` read of the same stream (as on a single Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.kit.batching import GroupCommit
from app.kit.redis import READ_LINGER, ReadInFlight, group_by_slot, is_cluster

log = structlog.get_logger(__name__)

CONSUMER = "owner"
PAGE = 1000  # pending entries replayed per stream and round trip
READ_COUNT = 500
READ_BLOCK_MS = 200
RETRY_SECONDS = 0.5
NEW = ">"


@dataclass(frozen=True)
class StreamEntry:
    store_id: uuid.UUID
    stream: str
    entry_id: str
    fields: dict[str, str]


@dataclass(eq=False)
class _Ownership:
    store_id: uuid.UUID


_Reply = list[tuple[str, list[tuple[str, dict[str, str] | None]]]]


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        group: str,
        stream_of: Callable[[uuid.UUID], str],
        *,
        page: int = PAGE,
        count: int = READ_COUNT,
        block_ms: int = READ_BLOCK_MS,
    ) -> None:
        self.redis = redis
        self.group = group
        self.stream_of = stream_of
        self.page = page
        self.count = count
        self.block_ms = block_ms
        # Owned stream -> its ownership (a new object each time the stream is taken, so that a read begun before
        # a disown and a new `own` delivers nothing: the new ownership replays those entries itself).
        self._streams: dict[str, _Ownership] = {}
        # Owned streams still replaying their pending entries -> the last id replayed ("0": none yet).
        self._replay: dict[str, str] = {}
        self._owned_changed = asyncio.Event()
        self._cluster = is_cluster(redis)
        # Cluster only: the blocking read in flight per slot group, keyed by its streams, with its snapshot.
        self._inflight: dict[frozenset[str], tuple[asyncio.Task[_Reply], dict[str, _Ownership]]] = {}
        self._acks: GroupCommit[StreamEntry, None] = GroupCommit(self._send_acks)
        # Single Redis: the blocking `>` read in flight (see `settle`).
        self._reading = ReadInFlight()

    # --- ownership -----------------------------------------------------------------------------------------
    async def own(self, store_id: uuid.UUID) -> None:
        """Start reading the store's stream (its lease was just taken): pending entries first."""
        stream = self.stream_of(store_id)
        await self.create_group(stream)
        if stream not in self._streams:
            self._streams[stream] = _Ownership(store_id)
            self._replay[stream] = "0"
            self._owned_changed.set()

    def disown(self, store_id: uuid.UUID) -> None:
        """Stop reading the store's stream; what was read and not acknowledged stays for the next owner."""
        stream = self.stream_of(store_id)
        self._streams.pop(stream, None)
        self._replay.pop(stream, None)

    async def settle(self, store_id: uuid.UUID) -> None:
        """Return once no `>` read in flight names the store's stream (bounded by one blocking read). Called
        between `disown` and the release of the store's lease: an entry Redis gave such a read after the next
        owner (another process) replayed the pending ones would stay pending, unseen, until the store changes
        hands again, holding back the stream's trim (app/kit/redis.py, `ReadInFlight`)."""
        stream, timeout = self.stream_of(store_id), self.block_ms / 1000 + 2
        reads = [task for names, (task, _) in self._inflight.items() if stream in names]
        if reads:
            await asyncio.wait(reads, timeout=timeout)
        await self._reading.settle([stream], timeout)

    def owned(self) -> set[uuid.UUID]:
        return {ownership.store_id for ownership in self._streams.values()}

    def owns(self, store_id: uuid.UUID) -> bool:
        return self.stream_of(store_id) in self._streams

    async def create_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- reading -------------------------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[list[StreamEntry]]:
        """Batches of entries of the owned streams, each stream's pending entries first, then new ones. Never
        ends by itself: Redis errors are logged and retried."""
        groups_missing = False
        while True:
            try:
                if groups_missing:
                    # Inside the try: right after a Redis restart the pool's connections are stale, and the
                    # first command on each fails; that must be retried here, not end the reading.
                    for stream in list(self._streams):
                        await self.create_group(stream)
                    groups_missing = False
                batch = await self._read_once()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning(
                        "consumer groups missing (Redis lost its data?); recreating them", group=self.group
                    )
                    groups_missing = True
                    continue
                # Any other error reply (a Redis still loading its data...): reading must outlive it, or the
                # process stops handling while it looks alive.
                log.warning("reading the streams failed; retrying", group=self.group, error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("reading the streams failed; retrying", group=self.group, error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if batch:
                yield batch

    async def _read_once(self) -> list[StreamEntry]:
        if not self._streams and not self._inflight:
            self._owned_changed.clear()
            await self._owned_changed.wait()
            return []
        if self._cluster:
            if self._inflight and (self._replay or not self._streams):
                return await self._collect(everything=True)
            if self._replay:
                return await self._replay_page()
            return await self._read_cluster()
        if self._replay:
            return await self._replay_page()
        owned = dict(self._streams)
        with self._reading.reading(owned):
            reply = await self._xreadgroup(dict.fromkeys(owned, NEW), count=self.count, block=self.block_ms)
        entries = self._entries(reply, owned)
        if reply and len(entries) < self.count:
            # A partial batch under a steady trickle: wait a moment, so that the next read (and each flush
            # behind it) carries more than one entry.
            await asyncio.sleep(READ_LINGER)
        return entries

    async def _read_cluster(self) -> list[StreamEntry]:
        """Start a blocking read for every slot group of owned streams without one in flight, then collect the
        reads that ended (at least one)."""
        streams = list(self._streams)
        busy = set().union(*self._inflight) if self._inflight else set()
        for group in group_by_slot(self.redis, streams):
            names = frozenset(streams[i] for i in group)
            if names & busy:
                continue  # read again once its read in flight is collected
            owned = {name: self._streams[name] for name in names}
            task = asyncio.create_task(
                self._xreadgroup(dict.fromkeys(owned, NEW), count=self.count, block=self.block_ms)
            )
            self._inflight[names] = (task, owned)
        entries = await self._collect(everything=False)
        if entries and len(entries) < self.count:
            await asyncio.sleep(READ_LINGER)
        return entries

    async def _collect(self, *, everything: bool) -> list[StreamEntry]:
        """Entries of the reads in flight that ended (waiting for one, or for all with `everything`). An error
        of one read is raised only if no other read brought entries (those must be handled, not dropped)."""
        tasks = [task for task, _ in self._inflight.values()]
        await asyncio.wait(
            tasks, return_when=asyncio.ALL_COMPLETED if everything else asyncio.FIRST_COMPLETED
        )
        entries: list[StreamEntry] = []
        error: BaseException | None = None
        for names, (task, owned) in list(self._inflight.items()):
            if not task.done():
                continue
            del self._inflight[names]
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                error = error or exc
                continue
            entries.extend(self._entries(task.result(), owned))
        if error is not None and not entries:
            raise error
        if error is not None:
            log.warning("reading part of the streams failed; retrying", group=self.group, error=str(error))
        return entries

    def _abandon_reads(self) -> None:
        for task, _ in self._inflight.values():
            task.cancel()
        self._inflight.clear()

    async def _replay_page(self) -> list[StreamEntry]:
        """One page of pending entries of every stream still replaying (one round trip for all of them). A
        stream whose page came back short is done and joins the `>` read."""
        cursors = dict(self._replay)
        owned = dict(self._streams)
        reply = await self._read_by_slot(cursors, count=self.page)
        returned = {stream: items for stream, items in reply}
        entries: list[StreamEntry] = []
        deleted: list[StreamEntry] = []
        for stream, cursor in cursors.items():
            items = returned.get(stream, [])
            ownership = self._streams.get(stream)
            if ownership is None or ownership is not owned.get(stream):
                continue  # disowned (or disowned and owned again) while the read was in flight
            for entry_id, fields in items:
                entry = StreamEntry(ownership.store_id, stream, entry_id, fields or {})
                # A pending entry deleted from the stream comes back without fields: nothing can handle it.
                (entries if fields else deleted).append(entry)
            if len(items) < self.page:
                del self._replay[stream]
                if entries or deleted:
                    log.info("replayed unacknowledged entries", stream=stream, last=cursor)
            else:
                self._replay[stream] = items[-1][0]
        if deleted:
            await self._send_acks(deleted)
        return entries

    async def _read_by_slot(self, streams: dict[str, str], *, count: int) -> _Reply:
        """A non-blocking XREADGROUP of `streams`: one call, or one per hash slot (concurrently) on a cluster."""
        names = list(streams)
        groups = group_by_slot(self.redis, names)
        if len(groups) <= 1:
            return await self._xreadgroup(streams, count=count, block=None)
        replies = await asyncio.gather(
            *[
                self._xreadgroup({names[i]: streams[names[i]] for i in group}, count=count, block=None)
                for group in groups
            ]
        )
        return [item for reply in replies for item in reply]

    async def _xreadgroup(
        self, streams: dict[str, str], *, count: int, block: int | None
    ) -> list[tuple[str, list[tuple[str, dict[str, str] | None]]]]:
        reply: Any = await self.redis.xreadgroup(self.group, CONSUMER, streams, count=count, block=block)  # type: ignore[arg-type]
        return [(stream, list(items)) for stream, items in (reply or [])]

    def _entries(
        self, reply: list[tuple[str, list[tuple[str, dict[str, str] | None]]]], owned: dict[str, _Ownership]
    ) -> list[StreamEntry]:
        entries = []
        for stream, items in reply:
            ownership = self._streams.get(stream)
            if ownership is None or ownership is not owned.get(stream):
                continue  # disowned while the read was in flight: the next owner (maybe us again) replays it
            for entry_id, fields in items:
                if fields:
                    entries.append(StreamEntry(ownership.store_id, stream, entry_id, fields))
        return entries

    # --- acknowledging and trimming ------------------------------------------------------------------------
    async def ack(self, entry: StreamEntry) -> None:
        """XACK the entry; returns once Redis has it (or raises)."""
        await self._acks.submit(entry)

    async def ack_many(self, entries: list[StreamEntry]) -> None:
        """`ack` for several entries, without a task each."""
        if len(entries) == 1:
            await self._acks.submit_nowait(entries[0])
            return
        await asyncio.gather(*[self._acks.submit_nowait(entry) for entry in entries])

    async def _send_acks(self, entries: list[StreamEntry]) -> list[None]:
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()
        return [None] * len(entries)

    async def trim(self, store_id: uuid.UUID) -> int:
        """Drop acknowledged entries: `XTRIM MINID` up to the oldest pending entry, never by length (a length
        cap drops unacknowledged entries). Returns how many were dropped."""
        stream = self.stream_of(store_id)
        summary: Any = await self.redis.xpending(stream, self.group)
        if summary and summary.get("pending"):
            keep_from = summary["min"]
        else:
            groups: Any = await self.redis.xinfo_groups(stream)
            group = next((g for g in groups if g["name"] == self.group), None)
            if group is None or group["last-delivered-id"] in ("0-0", None):
                return 0
            # Nothing pending: everything up to the last delivered entry was acknowledged. MINID keeps the
            # given id itself, which is harmless (one entry).
            keep_from = group["last-delivered-id"]
        return int(await self.redis.xtrim(stream, minid=keep_from, approximate=False))

    def close(self) -> None:
        self._abandon_reads()
        self._acks.close()
