"""Sending: the owned stores' outboxes, read with one XREADGROUP, sent in order per chat, paced per store.

An outbox entry is acknowledged only when its row is final (sent or failed). A row moves pending -> sending
(with its WhatsApp id recorded) right before the network call; a row found `sending` later was interrupted
by a crash mid-send and is marked failed rather than sent again, because it may have reached the customer.
Entries use one stable consumer name: the lease holder is the only reader of a store's outbox, so a new owner
finds the previous owner's unacknowledged entries as its own pending entries and finishes them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import ResponseError

from app.contracts import OUTBOX_GROUP, create_store_streams, outbox_stream
from app.kit.batching import GroupCommit
from app.kit.db import single_statement, transaction
from app.kit.redis import create_redis, read_group
from app.models import MessageStatus
from sessions.drivers.base import DriverError
from sessions.repository import OutboundToSend, SendOutcome, SessionsRepository

if TYPE_CHECKING:
    from sessions.manager import SessionManager
    from sessions.store_session import StoreSession

log = structlog.get_logger(__name__)

CONSUMER = "owner"
SEND_ATTEMPTS = 3
INTERRUPTED = "interrupted by a restart while sending; not sent again, as it may have reached the customer"
# How long a store handed over on purpose (a rebalance, a shutdown) may take to finish the sends in flight.
DRAIN_SECONDS = 5.0


@dataclass
class ChatLane:
    chat_jid: str
    queue: asyncio.Queue[tuple[str, uuid.UUID]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    busy: bool = False  # between taking an entry and finishing its send


class Outbox:
    def __init__(self, manager: SessionManager, redis_url: str) -> None:
        self.manager = manager
        self.redis = manager.redis
        self._reader = create_redis(redis_url)  # the blocking read holds a connection of its own
        self._lanes: dict[tuple[uuid.UUID, str], ChatLane] = {}
        self._recovered: set[uuid.UUID] = set()
        self._draining: set[uuid.UUID] = set()  # stores being handed over: no new sends
        # Claims and outcomes of every lane are written together (app/kit/batching.py): one statement each
        # per round, whatever the number of chats sending at once.
        self._claims: GroupCommit[tuple[uuid.UUID, str], OutboundToSend | None] = GroupCommit(
            self._claim_batch
        )
        self._finishes: GroupCommit[SendOutcome, bool] = GroupCommit(self._finish_batch)
        self._acks: GroupCommit[tuple[str, str], None] = GroupCommit(self._ack_batch)

    async def close(self) -> None:
        self._claims.close()
        self._finishes.close()
        self._acks.close()
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
        await self._reader.aclose()

    async def drain(self, store_ids: Iterable[uuid.UUID], timeout: float = DRAIN_SECONDS) -> None:
        """Before a store is handed over on purpose: start no new send, and let each send in flight end (within
        `timeout`). A send cut short leaves its row `sending`, which the next owner must mark failed rather than
        send again; a rebalance under load once cut hundreds of claimed replies short that way. Entries not
        started stay unacknowledged, for the next owner."""
        self._draining.update(store_ids)
        busy = []
        for key, lane in self._lanes.items():
            if key[0] in self._draining and lane.task is not None:
                if lane.busy:
                    busy.append(lane.task)  # ends after its current send (see _run_lane)
                else:
                    lane.task.cancel()
        if busy:
            _, late = await asyncio.wait(busy, timeout=timeout)
            if late:
                log.warning("sends still in flight after the drain; cut short", count=len(late))

    def forget(self, store_id: uuid.UUID) -> None:
        """The store is no longer ours: stop its lanes; unacknowledged entries stay for the next owner."""
        self._recovered.discard(store_id)
        self._draining.discard(store_id)
        for key in [k for k in self._lanes if k[0] == store_id]:
            lane = self._lanes.pop(key)
            if lane.task is not None:
                lane.task.cancel()

    async def run(self) -> None:
        groups_missing = False
        while True:
            try:
                if groups_missing:
                    # Redis came back without our streams: recreate them; the worker re-queues pending replies.
                    # Inside the try: right after a restart the pool's connections are stale and the first
                    # command on each fails, which must be retried here, not end the reader.
                    for store_id in list(self.manager.sessions):
                        await create_store_streams(self.redis, store_id)
                    groups_missing = False
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning("outbox consumer groups missing; recreating them")
                    groups_missing = True
                    continue
                log.warning("outbox read failed; retrying", exc_info=True)
                await asyncio.sleep(1)
            except Exception:
                log.warning("outbox read failed; retrying", exc_info=True)
                await asyncio.sleep(1)

    async def _read_once(self) -> None:
        sessions = [s for s in self.manager.sessions if s not in self._draining]
        if not sessions:
            await asyncio.sleep(0.1)
            return
        for store_id in [s for s in sessions if s not in self._recovered]:
            # A new owner first takes what the previous one left unacknowledged, in order.
            pending = await read_group(
                self._reader, OUTBOX_GROUP, CONSUMER, {outbox_stream(store_id): "0"}, count=10_000
            )
            self._recovered.add(store_id)
            self._dispatch(pending)
        streams = {outbox_stream(s): ">" for s in sessions if s in self._recovered}
        if streams:
            self._dispatch(
                await read_group(self._reader, OUTBOX_GROUP, CONSUMER, streams, count=500, block=200)
            )

    def _dispatch(self, batch: list[tuple[str, list[tuple[str, dict[str, str]]]]]) -> None:
        for stream, entries in batch:
            store_id = uuid.UUID(stream.removeprefix("outbox:store-"))
            session = self.manager.sessions.get(store_id)
            if session is None or store_id in self._draining:
                continue  # left unacknowledged: the store's next owner sends it
            for entry_id, fields in entries:
                key = (store_id, fields.get("chat_jid", ""))
                lane = self._lanes.get(key)
                if lane is None:
                    lane = self._lanes[key] = ChatLane(chat_jid=key[1])
                    lane.task = asyncio.create_task(self._run_lane(session, lane))
                lane.queue.put_nowait((entry_id, uuid.UUID(fields["message_id"])))

    async def _run_lane(self, session: StoreSession, lane: ChatLane) -> None:
        while session.store_id not in self._draining:
            entry_id, message_id = await lane.queue.get()
            lane.busy = True
            try:
                await self._send(session, lane.chat_jid, entry_id, message_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # PostgreSQL or Redis went away mid-send: the entry stays unacknowledged and the row says where
                # it stopped; the store is re-taken (and its pending entries re-read) once they are back.
                log.warning("sending failed; left for recovery", message_id=str(message_id), exc_info=True)
            finally:
                lane.busy = False

    async def _send(self, session: StoreSession, chat_jid: str, entry_id: str, target: uuid.UUID) -> None:
        """Send the entry's reply, and first any earlier reply of the chat still pending (its entry lost with a
        Redis, or re-queued late by a sweeper): the entry is a trigger, the order is the conversation's."""
        while True:
            await session.connected.wait()
            await session.limiter.wait(chat_jid)
            claimed = await self._claims.submit((target, self.manager.driver.new_message_id()))
            if claimed is None:  # nothing pending up to the target: sent already, or interrupted by a crash
                await self._settle_unclaimable(target)
                break
            final = await self._deliver(session, chat_jid, claimed)
            if final and claimed.id == target:
                break
        await self._ack(session.store_id, entry_id)

    async def _deliver(self, session: StoreSession, chat_jid: str, claimed: OutboundToSend) -> bool:
        """One network call for a claimed row, then its outcome: sent, back to pending for another attempt (the
        driver refused before anything left; returns False), or failed after its attempts."""
        await self._pace(session, chat_jid, claimed.text)
        try:
            sent = await session.connection.send_text(chat_jid, claimed.text, wa_id=claimed.wa_id)
        except DriverError as exc:
            if exc.retryable and claimed.attempts < SEND_ATTEMPTS:
                async with transaction(self.manager.sessionmaker) as db:
                    await SessionsRepository(db).back_to_pending(claimed.id, str(exc))
                await asyncio.sleep(0.5 * 2 ** (claimed.attempts - 1))
                return False
            await self._finishes.submit(SendOutcome(claimed.id, MessageStatus.failed, error=str(exc)))
            log.warning("outbound message failed", message_id=str(claimed.id), error=str(exc))
            return True
        await self._finishes.submit(
            SendOutcome(claimed.id, MessageStatus.sent, sent_at=sent.timestamp, wa_id=sent.wa_id)
        )
        return True

    async def _settle_unclaimable(self, message_id: uuid.UUID) -> None:
        if await self._finishes.submit(SendOutcome(message_id, MessageStatus.failed, error=INTERRUPTED)):
            log.warning("outbound send interrupted earlier; marked failed", message_id=str(message_id))

    async def _claim_batch(self, claims: list[tuple[uuid.UUID, str]]) -> list[OutboundToSend | None]:
        async with single_statement(self.manager.sessionmaker) as db:
            return await SessionsRepository(db).claim_for_sending(claims)

    async def _finish_batch(self, outcomes: list[SendOutcome]) -> list[bool]:
        async with single_statement(self.manager.sessionmaker) as db:
            return await SessionsRepository(db).finish_sending(outcomes)

    async def _pace(self, session: StoreSession, chat_jid: str, text: str) -> None:
        """Typing presence and a human-ish pause before the send (anti-ban); a failed presence is no reason to
        hold a reply."""
        policy = session.policy
        typing = policy.typing_seconds(text)
        if typing:
            with contextlib.suppress(DriverError):
                await session.connection.set_typing(chat_jid, True)
            await asyncio.sleep(typing)
            with contextlib.suppress(DriverError):
                await session.connection.set_typing(chat_jid, False)
        jitter = policy.jitter_seconds()
        if jitter:
            await asyncio.sleep(jitter)

    async def _ack(self, store_id: uuid.UUID, entry_id: str) -> None:
        await self._acks.submit((outbox_stream(store_id), entry_id))

    async def _ack_batch(self, entries: list[tuple[str, str]]) -> list[None]:
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id in entries:
            by_stream.setdefault(stream, []).append(entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, OUTBOX_GROUP, *ids)
            await pipe.execute()
        return [None] * len(entries)
