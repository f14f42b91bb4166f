"""The relay: PostgreSQL rows back onto their Redis streams, for the stores this worker owns.

PostgreSQL is the record and Redis the work queue (docs/architecture.md, invariant 1): a row whose stream entry may
be missing is put on its stream again —
- inbound rows `received`: committed by the session manager, whose XADD then failed (it set them back);
- inbound rows `queued` long ago and still not handled: the entry was lost with a Redis that lost its data;
- replies `pending` long ago: their outbox entry was lost the same way.
One process role runs it (the worker, per owned store), so no two sweepers race over the same rows. An entry
queued twice costs only a skip: the handler and the outbox's claim are idempotent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from redis.asyncio import Redis

from app.contracts import inbound_entry, messages_stream, outbox_entry, outbox_stream
from app.kit.db import AsyncSessionMaker, transaction
from workers.repository import WorkerRepository

log = structlog.get_logger(__name__)

# A row still `received` this long after its insert lost its way to the stream (the session manager sets it
# back to `received` when its XADD fails; a moment later Redis may be back).
RECEIVED_AFTER = timedelta(seconds=3)


class Relay:
    def __init__(self, sessionmaker: AsyncSessionMaker, redis: Redis, *, stale_after: timedelta) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.stale_after = stale_after

    async def sweep(self, store_ids: list[uuid.UUID]) -> int:
        """Put the stores' rows whose entries may be missing back on their streams; returns how many."""
        if not store_ids:
            return 0
        now = datetime.now(UTC)
        async with transaction(self.sessionmaker) as session:
            repository = WorkerRepository(session)
            inbound = await repository.unqueued_inbound(
                store_ids, now - RECEIVED_AFTER, now - self.stale_after
            )
            outbound = await repository.unsent_outbound(store_ids, now - self.stale_after)
        if not inbound and not outbound:
            return 0
        # A stream missing its group (Redis lost its data) is fine: its owner recreates the group on the NOGROUP
        # of its next read, at id 0, so these entries are read.
        async with self.redis.pipeline(transaction=False) as pipe:
            for message_id, store_id, chat_jid, wa_id in inbound:
                entry = inbound_entry(message_id=message_id, chat_jid=chat_jid, wa_id=wa_id)
                pipe.xadd(messages_stream(store_id), entry)  # type: ignore[arg-type]
            for message_id, store_id, chat_jid in outbound:
                entry = outbox_entry(message_id=message_id, chat_jid=chat_jid)
                pipe.xadd(outbox_stream(store_id), entry)  # type: ignore[arg-type]
            await pipe.execute()
        # After the XADDs: a row marked but never queued would wait a whole `stale_after` more.
        async with transaction(self.sessionmaker) as session:
            await WorkerRepository(session).relayed(
                [row[0] for row in inbound] + [row[0] for row in outbound]
            )
        log.info("relayed rows back onto their streams", inbound=len(inbound), outbound=len(outbound))
        return len(inbound) + len(outbound)
