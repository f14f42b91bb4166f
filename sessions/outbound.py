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
from collections.abc import Callable, Iterable
from typing import Protocol

import structlog
from redis.asyncio import Redis

from app.contracts import OUTBOX_GROUP, outbox_stream
from app.kit import metrics
from app.kit.batching import GroupCommit
from app.kit.db import AsyncSessionMaker, single_statement, transaction
from app.kit.lanes import Key, Lanes
from app.kit.loops import every
from app.kit.streams import StreamConsumer, StreamEntry
from app.media.storage import MediaNotFound, MediaStorage
from app.models import MessageStatus
from sessions.drivers.base import DriverError, OutboundMedia, SentMessage
from sessions.ratelimit import SendPolicy, StoreRateLimiter
from sessions.repository import OutboundToSend, SendOutcome, SessionsRepository

log = structlog.get_logger(__name__)

SEND_ATTEMPTS = 3
INTERRUPTED = "interrupted by a restart while sending; not sent again, as it may have reached the customer"
# How long a store handed over on purpose (a rebalance, a shutdown) may take to finish the sends in flight.
DRAIN_SECONDS = 5.0
TRIM_SECONDS = 30.0


class SendingConnection(Protocol):
    async def send_text(self, chat_jid: str, text: str, *, wa_id: str | None = None) -> SentMessage: ...

    async def send_media(
        self, chat_jid: str, media: OutboundMedia, *, wa_id: str | None = None
    ) -> SentMessage: ...

    async def set_typing(self, chat_jid: str, typing: bool) -> None: ...


class SendingSession(Protocol):
    """What the outbox needs of an owned store's session."""

    @property
    def store_id(self) -> uuid.UUID: ...

    @property
    def connection(self) -> SendingConnection: ...

    @property
    def connected(self) -> asyncio.Event: ...

    @property
    def limiter(self) -> StoreRateLimiter: ...

    @property
    def policy(self) -> SendPolicy: ...


class Outbox:
    def __init__(
        self,
        redis: Redis,
        sessionmaker: AsyncSessionMaker,
        *,
        new_message_id: Callable[[], str],
        session_for: Callable[[uuid.UUID], SendingSession | None],
        storage: MediaStorage | None = None,
    ) -> None:
        self.storage = storage  # media messages' bytes (app/media/storage.py)
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.new_message_id = new_message_id
        self.session_for = session_for
        self.streams = StreamConsumer(redis, OUTBOX_GROUP, outbox_stream)
        # One lane per chat, alive only while the chat has entries to send. No global cap, no backpressure: a
        # lane spends most of its time in pacing and rate-limit waits, which must not hold back other stores.
        self.lanes: Lanes[StreamEntry] = Lanes(self._send_entry)
        # Claims and outcomes of every lane are written together (app/kit/batching.py): one statement each
        # per round, whatever the number of chats sending at once.
        self._claims: GroupCommit[tuple[uuid.UUID, str], OutboundToSend | None] = GroupCommit(
            self._claim_batch
        )
        self._finishes: GroupCommit[SendOutcome, bool] = GroupCommit(self._finish_batch)

    async def own(self, store_id: uuid.UUID) -> None:
        """Start sending the store's outbox (its lease was just taken): what the previous owner left first."""
        await self.streams.own(store_id)

    def disown(self, store_id: uuid.UUID) -> None:
        """The store is no longer ours: stop its lanes; unacknowledged entries stay for the next owner."""
        self.streams.disown(store_id)
        self.lanes.drop_store(store_id)

    async def settle(self, store_id: uuid.UUID) -> None:
        """Return once no read of ours names the store's outbox: call it between `disown` and the release of
        the store's lease (app/kit/streams.py, `settle`)."""
        await self.streams.settle(store_id)

    async def close(self) -> None:
        self._claims.close()
        self._finishes.close()
        self.streams.close()
        self.lanes.close()

    async def drain(self, store_ids: Iterable[uuid.UUID], timeout: float = DRAIN_SECONDS) -> None:
        """Before a store is handed over on purpose: start no new send, and let each send in flight end (within
        `timeout`). A send cut short leaves its row `sending`, which the next owner must mark failed rather than
        send again; a rebalance under load once cut hundreds of claimed replies short that way. Entries not
        started stay unacknowledged, for the next owner."""
        stores = list(store_ids)
        for store_id in stores:
            self.streams.disown(store_id)  # read nothing more for it
        late = await self.lanes.drain_stores(stores, timeout)
        if late:
            log.warning("sends still in flight after the drain; cut short", count=late)
        await asyncio.gather(*(self.streams.settle(store_id) for store_id in stores))

    async def run(self) -> None:
        trim = asyncio.create_task(every(self.trim, TRIM_SECONDS, log))
        try:
            async for batch in self.streams.batches():
                for entry in batch:
                    self.lanes.put((entry.store_id, entry.fields.get("chat_jid", "")), entry)
        finally:
            trim.cancel()

    async def trim(self) -> None:
        for store_id in self.streams.owned():
            await self.streams.trim(store_id)

    async def _send_entry(self, key: Key, run: list[StreamEntry]) -> None:
        session = self.session_for(key[0])
        if session is None:
            return  # left unacknowledged: the store's next owner sends it
        for entry in run:
            try:
                await self._send(session, key[1], entry)
            except asyncio.CancelledError:
                raise
            except Exception:
                # PostgreSQL or Redis went away mid-send: the entry stays unacknowledged and the row says where
                # it stopped; the store is re-taken (and its pending entries re-read) once they are back.
                log.warning("sending failed; left for recovery", entry=entry.entry_id, exc_info=True)

    async def _send(self, session: SendingSession, chat_jid: str, entry: StreamEntry) -> None:
        """Send the entry's reply, and first any earlier reply of the chat still pending (its entry lost with a
        Redis, or re-queued late by the relay): the entry is a trigger, the order is the conversation's."""
        target = uuid.UUID(entry.fields["message_id"])
        with structlog.contextvars.bound_contextvars(message_id=str(target)):
            await self._send_up_to(session, chat_jid, target)
        await self.streams.ack(entry)

    async def _send_up_to(self, session: SendingSession, chat_jid: str, target: uuid.UUID) -> None:
        while True:
            await session.connected.wait()
            if await session.limiter.wait(chat_jid):
                metrics.SENDS_PACED.inc()
            claimed = await self._claims.submit((target, self.new_message_id()))
            if claimed is None:  # nothing pending up to the target: sent already, or interrupted by a crash
                await self._settle_unclaimable(target)
                break
            final = await self._deliver(session, chat_jid, claimed)
            if final and claimed.id == target:
                break

    async def _deliver(self, session: SendingSession, chat_jid: str, claimed: OutboundToSend) -> bool:
        """One network call for a claimed row, then its outcome: sent, back to pending for another attempt (the
        driver refused before anything left; returns False), or failed after its attempts."""
        await self._pace(session, chat_jid, claimed.text)
        try:
            if claimed.media is not None and claimed.media.get("key"):
                sent = await session.connection.send_media(
                    chat_jid, await self._media_of(claimed), wa_id=claimed.wa_id
                )
            else:
                sent = await session.connection.send_text(chat_jid, claimed.text, wa_id=claimed.wa_id)
        except DriverError as exc:
            metrics.SENDS_FAILED.inc()
            if exc.retryable and claimed.attempts < SEND_ATTEMPTS:
                async with transaction(self.sessionmaker) as db:
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

    async def _media_of(self, claimed: OutboundToSend) -> OutboundMedia:
        """The bytes and presentation of a media message; a file that is gone can never be sent."""
        media = claimed.media or {}
        if self.storage is None:
            raise DriverError("no media storage configured in this process", retryable=False)
        try:
            data = await self.storage.get(str(media["key"]))
        except MediaNotFound as exc:
            raise DriverError("the media file is gone from storage", retryable=False) from exc
        return OutboundMedia(
            type=claimed.type,
            data=data,
            mime=str(media.get("mimetype") or "application/octet-stream"),
            caption=media.get("caption") or None,
            file_name=media.get("file_name") or None,
        )

    async def _settle_unclaimable(self, message_id: uuid.UUID) -> None:
        if await self._finishes.submit(SendOutcome(message_id, MessageStatus.failed, error=INTERRUPTED)):
            log.warning("outbound send interrupted earlier; marked failed", message_id=str(message_id))

    async def _claim_batch(self, claims: list[tuple[uuid.UUID, str]]) -> list[OutboundToSend | None]:
        async with single_statement(self.sessionmaker) as db:
            return await SessionsRepository(db).claim_for_sending(claims)

    async def _finish_batch(self, outcomes: list[SendOutcome]) -> list[bool]:
        async with single_statement(self.sessionmaker) as db:
            finished = await SessionsRepository(db).finish_sending(outcomes)
        statuses = [o.status for o, done in zip(outcomes, finished, strict=True) if done]
        metrics.count_messages("out", "sent", statuses.count(MessageStatus.sent))
        metrics.count_messages("out", "failed", statuses.count(MessageStatus.failed))
        return finished

    async def _pace(self, session: SendingSession, chat_jid: str, text: str) -> None:
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
