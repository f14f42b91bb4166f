"""`mostrador worker`: run the worker until SIGTERM/SIGINT, drain the lanes, hand the stores over."""

from __future__ import annotations

import asyncio
import faulthandler
import signal

from app.config import Settings
from app.contracts import MESSAGES_GROUP, messages_dlq, messages_stream
from app.kit import loops, metrics
from app.kit.db import create_engine, create_sessionmaker
from app.kit.ops import Readiness, ops_listener
from app.kit.process import tune_garbage_collector
from app.kit.redis import create_redis
from workers.service import Worker
from workers.webhooks.service import WebhookWorker


async def serve(settings: Settings) -> None:
    database_url, redis_url = settings.require_urls()
    settings = settings.with_dev_secret()  # webhook secrets (and the webhook bot's) are encrypted with it
    # Handlers beyond the pool wait for a connection: PostgreSQL serves a few dozen busy connections no faster
    # than twenty, and every replica's connections count against its max_connections (100 by default).
    engine = create_engine(
        database_url,
        pool_size=min(20, settings.worker_concurrency + 2),
        max_overflow=0,
        pre_ping=False,
        application_name="mostrador-worker",
    )
    redis = create_redis(redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sessionmaker = create_sessionmaker(engine)
    worker = Worker(settings, sessionmaker, redis, redis_url)
    # Webhook deliveries run in the worker processes too, with their own per-store leases (workers/webhooks).
    webhooks = WebhookWorker(settings, sessionmaker, redis, redis_url)
    metrics.register("worker")
    metrics.add_scrape_hook(
        metrics.StreamDepths(
            redis,
            label="messages",
            group=MESSAGES_GROUP,
            stream_of=messages_stream,
            owned=worker.streams.owned,
            dlq_of=messages_dlq,
        )
    )
    readiness = Readiness(engine, redis)
    tune_garbage_collector()
    try:
        async with ops_listener(readiness, host=settings.ops_host, port=settings.ops_port):
            stopping = asyncio.create_task(readiness.not_ready_after(stop))
            try:
                await asyncio.gather(worker.run(stop), webhooks.run(stop))
            finally:
                stopping.cancel()
    finally:
        await redis.aclose()
        await engine.dispose()


def main(settings: Settings) -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: every thread's stack, for a stuck worker
    loops.run(serve(settings))
