"""Inbound messages: durable in PostgreSQL first, then queued on the store's stream (DESIGN.md invariant 1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from redis.asyncio import Redis

from app.contracts import inbound_entry, messages_stream
from app.kit.db import AsyncSessionMaker, transaction
from sessions.drivers.base import InboundMessage
from sessions.repository import SessionsRepository

log = structlog.get_logger(__name__)

# A row still `received` this long after its insert lost its way to the stream: the sweeper queues it.
SWEEP_AFTER = timedelta(seconds=3)


class InboundRecorder:
    def __init__(self, sessionmaker: AsyncSessionMaker, redis: Redis) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis

    async def save(self, store_id: uuid.UUID, message: InboundMessage) -> None:
        """Commit the message, then queue it. Raises if it could not be committed (the driver then keeps it
        unacknowledged); once committed, a failure to queue is left to the sweeper, so this returns."""
        async with transaction(self.sessionmaker) as session:
            message_id = await SessionsRepository(session).save_inbound(store_id, message)
        if message_id is None:
            return  # a redelivery of a message we already hold; the first copy is queued or being swept
        try:
            await self.redis.xadd(
                messages_stream(store_id),
                inbound_entry(message_id=message_id, chat_jid=message.chat_jid, wa_id=message.wa_id),  # type: ignore[arg-type]
            )
        except Exception:
            log.warning(
                "queueing an inbound message failed; the sweeper will",
                message_id=str(message_id),
                exc_info=True,
            )
            try:
                async with transaction(self.sessionmaker) as session:
                    await SessionsRepository(session).mark_not_queued(message_id)
            except Exception:  # the worker's sweeper finds rows `queued` for too long, too
                log.warning("could not mark the message for the sweeper", message_id=str(message_id))

    async def sweep(self, store_ids: list[uuid.UUID]) -> int:
        """Queue rows committed but never queued. An entry queued twice is harmless: handling is idempotent."""
        if not store_ids:
            return 0
        async with transaction(self.sessionmaker) as session:
            rows = await SessionsRepository(session).received_backlog(
                store_ids, datetime.now(UTC) - SWEEP_AFTER
            )
        for message_id, store_id, chat_jid, wa_id in rows:
            await self.redis.xadd(
                messages_stream(store_id),
                inbound_entry(message_id=message_id, chat_jid=chat_jid, wa_id=wa_id),  # type: ignore[arg-type]
            )
        if rows:
            async with transaction(self.sessionmaker) as session:
                await SessionsRepository(session).mark_queued([row[0] for row in rows])
            log.info("swept inbound messages onto their streams", count=len(rows))
        return len(rows)
