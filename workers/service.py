"""The worker process: owns store streams through leases and handles their messages in per-chat lanes.

Stores are split between worker replicas by lease (`lease:worker:store-<id>`), a fair share each; a dead
worker's stores are taken over once its leases expire, and the new owner first replays the entries the old
one left unacknowledged. New stores are picked up at the next review, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import uuid
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from taskiq.message import TaskiqMessage

from app.config import Settings
from app.contracts import INBOUND_TASK, MESSAGES_GROUP, messages_stream, worker_lease_key
from app.kit import metrics
from app.kit.db import AsyncSessionMaker, transaction
from app.kit.leases import Leases, take_fair_share
from app.kit.loops import every, forever
from app.kit.streams import StreamConsumer, StreamEntry
from app.media.storage import create_storage
from workers.bots.webhook import WebhookBot
from workers.broker import store_broker
from workers.handler import InboundHandler, InboundRef
from workers.receiver import ChatLaneReceiver, write_dead_letter
from workers.relay import Relay
from workers.repository import WorkerRepository
from workers.retention import MediaRetention

log = structlog.get_logger(__name__)

WORKERS_KEY = "workers:live"
TRIM_SECONDS = 30.0
SWEEP_SECONDS = 5.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: AsyncSessionMaker,
        redis: Redis,
        redis_url: str,
        *,
        handler: InboundHandler | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        WebhookBot.configure(settings)  # the process's guard and key for the webhook bot
        self.redis = redis
        owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leases = Leases(redis, ttl_seconds=settings.worker_lease_ttl_seconds, owner=owner)
        # taskiq's registry and producer; reading is `streams` + the lanes of `receiver`.
        self.broker = store_broker(redis_url)
        self.streams = StreamConsumer(redis, MESSAGES_GROUP, messages_stream)
        self.handler = handler or InboundHandler(sessionmaker, redis)
        self.relay = Relay(
            sessionmaker, redis, stale_after=timedelta(seconds=settings.worker_sweep_after_seconds)
        )

        async def handle_inbound(
            message_id: str, chat_jid: str, wa_id: str = "", conversation_id: str = "", seq: int = 0
        ) -> None:
            await self.handler.handle([InboundRef(message_id, chat_jid, wa_id, conversation_id, seq)])

        self.storage = create_storage(settings)
        self.retention = MediaRetention(sessionmaker, self.storage)

        self.broker.register_task(handle_inbound, task_name=INBOUND_TASK)
        self.receiver = ChatLaneReceiver(
            self.streams,
            self.broker.formatter,
            self._run_tasks,
            concurrency=settings.worker_concurrency,
            chat_buffer=settings.worker_chat_buffer,
            max_attempts=settings.worker_max_attempts,
            dead_letter=self._dead_letter,
        )
        self.log = log.bind(worker=owner)

    async def _run_tasks(self, messages: list[TaskiqMessage]) -> None:
        """A lane's run of one chat's tasks, in order. Inbound messages go to the handler together (one
        transaction for the run); any other task runs on its own, through taskiq's registry."""
        if all(m.task_name == INBOUND_TASK for m in messages):
            refs = [InboundRef(**m.kwargs) for m in messages]
            if len(refs) == 1:  # one message (a retry, say): its lines name it
                with structlog.contextvars.bound_contextvars(message_id=refs[0].message_id):
                    await self.handler.handle(refs)
            else:
                await self.handler.handle(refs)
            return
        for message in messages:
            task = self.broker.find_task(message.task_name)
            if task is None:
                raise LookupError(f"no task named {message.task_name!r}")
            await task.original_func(*message.args, **message.kwargs)

    async def _dead_letter(self, entry: StreamEntry, message: TaskiqMessage | None, error: str) -> None:
        await write_dead_letter(self.redis, entry, message, error)
        metrics.count_messages("in", "dead")
        message_id = message.kwargs.get("message_id") if message else None
        if message_id:
            async with transaction(self.sessionmaker) as session:
                await WorkerRepository(session).mark_dead(uuid.UUID(str(message_id)), error)

    # --- the service ---------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        loops: list[asyncio.Task[None]] = [
            asyncio.create_task(every(self.review, self.settings.worker_reconcile_seconds, self.log)),
            asyncio.create_task(every(self._renew, self.leases.renew_interval, self.log)),
            asyncio.create_task(every(self.sweep, SWEEP_SECONDS, self.log)),  # the relay
            asyncio.create_task(every(self.trim, TRIM_SECONDS, self.log)),
            asyncio.create_task(
                every(self.media_retention, self.settings.media_retention_check_seconds, self.log)
            ),
        ]
        # Restarted if it ever ends: what it had read is in the lanes or still pending.
        reader = asyncio.create_task(forever(self.receiver.run, self.log))
        self.log.info("worker started", concurrency=self.settings.worker_concurrency)
        try:
            await stop.wait()
        finally:
            # Stop reading, let the lanes finish what they hold (bounded), then hand the stores over.
            reader.cancel()
            drained = await self.receiver.drain(self.settings.shutdown_grace_seconds)
            for task in loops:
                task.cancel()
            await asyncio.wait([reader, *loops], timeout=5)
            owned = list(self.streams.owned())
            with contextlib.suppress(Exception):
                await self.leases.release(*[worker_lease_key(s) for s in owned])
                await self.redis.zrem(WORKERS_KEY, self.leases.token)
            self.streams.close()
            with contextlib.suppress(Exception):
                await self.storage.close()
            self.log.info(
                "worker stopped", drained=drained, released=len(owned), handled=self.receiver.handled
            )

    # --- ownership -----------------------------------------------------------------------------------------
    async def review(self) -> None:
        async with transaction(self.sessionmaker) as session:
            store_ids = await WorkerRepository(session).store_ids()
        await take_fair_share(
            self.leases,
            WORKERS_KEY,
            worker_lease_key,
            stores=store_ids,
            owned=self.streams.owned,
            take=self.streams.own,
            drop=self._drop,
        )

    async def _drop(self, store_id: uuid.UUID) -> None:
        self.receiver.drop_store(store_id)
        await self.streams.settle(store_id)  # no read of ours names the stream once the next owner replays it
        await self.leases.release(worker_lease_key(store_id))

    async def _renew(self) -> None:
        for store_id in await self.leases.renew_all(self.log):
            self.receiver.drop_store(store_id)

    # --- housekeeping --------------------------------------------------------------------------------------
    async def trim(self) -> None:
        for store_id in self.streams.owned():
            await self.streams.trim(store_id)

    async def media_retention(self) -> None:
        """Media older than its tenant's retention, and expired uploads, deleted (workers/retention.py)."""
        await self.retention.run_if_first(self.redis, self.settings.media_retention_check_seconds)

    async def sweep(self) -> int:
        """The relay, for the stores we own (see workers/relay.py)."""
        return await self.relay.sweep(list(self.streams.owned()))
