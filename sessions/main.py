"""`mostrador sessions`: build the driver, run the manager until SIGTERM/SIGINT, hand the stores over."""

from __future__ import annotations

import asyncio
import faulthandler
import signal

from app.config import Settings, WhatsAppDriver
from app.contracts import OUTBOX_GROUP, outbox_stream
from app.kit import loops, metrics
from app.kit.db import create_engine, create_sessionmaker
from app.kit.ops import Readiness, ops_listener
from app.kit.process import tune_garbage_collector
from app.kit.redis import create_redis
from sessions.drivers.base import Driver
from sessions.manager import SessionManager


def build_driver(settings: Settings, database_url: str, redis_url: str) -> Driver:
    if settings.whatsapp_driver is WhatsAppDriver.simulator:
        from sessions.drivers.simulator import SimulatorDriver

        return SimulatorDriver(settings, settings.sim_redis_url or redis_url)
    from sessions.drivers.neonize import NeonizeDriver

    # own_messages: the owner's replies from the phone reach us (recorded, and they pause the bot: handoff).
    return NeonizeDriver(database_url, max_stores=settings.sessions_max_stores, own_messages=True)


async def serve(settings: Settings) -> None:
    database_url, redis_url = settings.require_urls()
    engine = create_engine(database_url, pool_size=10, pre_ping=False, application_name="mostrador-sessions")
    redis = create_redis(redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    manager = SessionManager(
        settings,
        build_driver(settings, database_url, redis_url),
        create_sessionmaker(engine),
        redis,
        redis_url,
    )
    metrics.register("sessions")
    metrics.add_scrape_hook(manager.measure)
    metrics.add_scrape_hook(
        metrics.StreamDepths(
            redis,
            label="outbox",
            group=OUTBOX_GROUP,
            stream_of=outbox_stream,
            owned=manager.outbox.streams.owned,
        )
    )
    readiness = Readiness(engine, redis)
    tune_garbage_collector()
    try:
        async with ops_listener(readiness, host=settings.ops_host, port=settings.ops_port):
            stopping = asyncio.create_task(readiness.not_ready_after(stop))
            try:
                await manager.run(stop)
            finally:
                stopping.cancel()
    finally:
        await redis.aclose()
        await engine.dispose()


def main(settings: Settings) -> None:
    # `kill -USR1 <pid>` prints every thread's stack: the first thing to look at when a manager seems stuck.
    faulthandler.register(signal.SIGUSR1)
    loops.run(serve(settings))
