"""Inbound messages: durable in PostgreSQL first, then queued on the store's stream (docs/architecture.md invariant 1).

Saves are group-committed (app/kit/batching.py): the messages handed over while a commit is in flight are
written together by the next one, with one statement, and queued with one pipeline. A caller returns only
when its message is durable, so a driver acknowledges nothing that could still be lost.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

from app.contracts import inbound_entry, messages_stream
from app.kit import metrics
from app.kit.batching import GroupCommit
from app.kit.db import AsyncSessionMaker, single_statement, transaction
from sessions.drivers.base import InboundMessage
from sessions.repository import SavedInbound, SessionsRepository

log = structlog.get_logger(__name__)


class InboundRecorder:
    def __init__(
        self,
        sessionmaker: AsyncSessionMaker,
        redis: Redis,
        *,
        on_media: Callable[[uuid.UUID, uuid.UUID, InboundMessage], None] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        # Told (store id, row id, message) of each committed message with media to download (sessions/media.py);
        # it must not block: the driver is waiting to acknowledge the batch.
        self.on_media = on_media
        # fail_waiting: a chat's later message must not be committed when an earlier one failed (and is to be
        # delivered again), or the chat's order (its `seq`) would break.
        self._commits: GroupCommit[tuple[uuid.UUID, InboundMessage], None] = GroupCommit(
            self._save_batch, fail_waiting=True
        )

    async def save(self, store_id: uuid.UUID, message: InboundMessage) -> None:
        """Return once the message is committed (a redelivery of one already held is a no-op). Raises if it
        could not be committed: the driver then keeps it unacknowledged. Once committed, a failure to queue it
        is left to the worker's relay (workers/relay.py). Messages handed over in order are committed in order."""
        await self._commits.submit((store_id, message))

    async def save_many(self, store_id: uuid.UUID, messages: list[InboundMessage]) -> None:
        """`save` for messages in order, without a task each. Raises if any could not be committed; those
        before it may be durable already (delivered again, they are recognised by their WhatsApp id)."""
        futures = [self._commits.submit_nowait((store_id, message)) for message in messages]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def close(self) -> None:
        self._commits.close()

    async def _save_batch(self, batch: list[tuple[uuid.UUID, InboundMessage]]) -> list[None]:
        # Customers' messages and the owner's (from-me: written from the phone) are saved in the order they came,
        # each run of one kind together (a batch is nearly always one run).
        for from_me, run in itertools.groupby(batch, key=lambda item: item[1].from_me):
            if from_me:
                await self._save_own(list(run))
            else:
                await self._save_customers(list(run))
        return [None] * len(batch)

    async def _save_own(self, own: list[tuple[uuid.UUID, InboundMessage]]) -> None:
        """The owner answering from the phone: the store's own messages, not work for the bot. Recorded (already
        sent) and the chats' bot paused, like a person's reply through the API."""
        async with transaction(self.sessionmaker) as session:
            paused = await SessionsRepository(session).save_own(own)
        if paused:
            log.info("messages from the owner's phone; bot paused in their chats", chats=paused)

    async def _save_customers(self, batch: list[tuple[uuid.UUID, InboundMessage]]) -> None:
        async with single_statement(self.sessionmaker) as session:
            written = await SessionsRepository(session).save_inbound(batch)
        queued = [
            (store_id, message, row)
            for (store_id, message), row in zip(batch, written, strict=True)
            if row is not None  # None: a redelivery; the first copy is queued or being relayed
        ]
        metrics.count_messages("in", "received", len(queued))
        if queued:
            await self._queue(queued)
            if self.on_media is not None:
                for store_id, message, row in queued:
                    if message.media is not None and "fetch" in message.media:
                        self.on_media(store_id, row.id, message)

    async def _queue(self, queued: list[tuple[uuid.UUID, InboundMessage, SavedInbound]]) -> None:
        """Add the committed messages to their stores' streams, each named by its conversation's key (a LID
        message of a customer known by phone goes to the phone chat's lane) and carrying its place in it (the
        worker then need not look the row up)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for store_id, message, row in queued:
                    entry = inbound_entry(
                        message_id=row.id,
                        chat_jid=row.chat_jid,
                        wa_id=message.wa_id,
                        conversation_id=row.conversation_id,
                        seq=row.seq,
                    )
                    pipe.xadd(messages_stream(store_id), entry)  # type: ignore[arg-type]
                await pipe.execute()
        except Exception:
            log.warning("queueing inbound messages failed; the relay will", count=len(queued), exc_info=True)
            try:
                async with transaction(self.sessionmaker) as session:
                    await SessionsRepository(session).mark_not_queued([q[2].id for q in queued])
            except Exception:  # the relay finds rows `queued` for too long, too
                log.warning("could not mark the messages for the relay", count=len(queued))
