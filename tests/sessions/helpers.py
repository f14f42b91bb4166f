"""Building blocks for session-manager tests: stores in the database, a manager in this event loop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.contracts import STORES_CHANGED_CHANNEL, sim_device_key
from app.kit.db import AsyncSessionMaker, transaction
from app.models import DesiredState, Message, Store, Tenant
from sessions.drivers.simulator import SimulatorDriver
from sessions.manager import SessionManager

T = TypeVar("T")

# Replies go out at once in tests; the anti-ban pacing has its own tests.
FAST_SENDING = {
    "sending": {"typing": False, "jitter_ms": 0, "per_store_per_second": 1000, "per_chat_per_minute": 1000}
}


def fast_settings(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "sessions_reconcile_seconds": 0.2,
        "sessions_lease_ttl_seconds": 3,
        "sessions_reconnect_base_seconds": 0.1,
        "sessions_reconnect_max_seconds": 0.5,
        "sim_receipt_delay_ms": 50,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


async def create_store(
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    *,
    name: str = "Panadería Sol",
    desired: DesiredState = DesiredState.linked,
    paired_phone: str | None = None,
    tenant_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A store row (and its tenant); with `paired_phone`, a device already paired in the simulator."""
    async with transaction(sessionmaker) as session:
        if tenant_id is None:
            tenant = Tenant(name="Tenant")
            session.add(tenant)
            await session.flush()
            tenant_id = tenant.id
        store = Store(tenant_id=tenant_id, name=name, desired_state=desired.value, settings=FAST_SENDING)
        if paired_phone is not None:
            store.device_jid = f"{paired_phone.removeprefix('+')}:7@s.whatsapp.net"
            store.phone_number = paired_phone
        session.add(store)
        await session.flush()
        store_id = store.id
    # No consumer groups here: each stream's owner (worker, session manager) creates its group when it takes
    # the store.
    if paired_phone is not None:
        device = f"{paired_phone.removeprefix('+')}:7@s.whatsapp.net"
        await redis.set(
            sim_device_key(device), json.dumps({"store_id": str(store_id), "phone": paired_phone})
        )
    await redis.publish(STORES_CHANGED_CHANNEL, str(store_id))  # as the API does after a commit
    return store_id


async def get_store(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID) -> Store:
    async with sessionmaker() as session:
        store = await session.get(Store, store_id)
        assert store is not None
        return store


async def messages(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID) -> list[Message]:
    async with sessionmaker() as session:
        result = await session.execute(
            select(Message).where(Message.store_id == store_id).order_by(Message.seq)
        )
        return list(result.scalars())


async def wait_for(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 10, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


async def wait_status(
    sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, status: str, timeout: float = 10
) -> Store:
    async def probe() -> Store | None:
        store = await get_store(sessionmaker, store_id)
        return store if store.status == status else None

    return await wait_for(probe, timeout=timeout, what=f"store status {status}")


@asynccontextmanager
async def running_manager(
    settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
    *,
    sim_redis_url: str | None = None,
) -> AsyncIterator[SessionManager]:
    """A manager on `redis` (`redis_url`); its simulated network on `sim_redis_url` (default: the same)."""
    driver = SimulatorDriver(settings, sim_redis_url or redis_url)
    manager = SessionManager(settings, driver, sessionmaker, redis, redis_url)
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        yield manager
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def drain_events(
    pubsub: Any, *, quiet: float = 0.5, until: str | None = None, timeout: float = 10
) -> list[dict[str, Any]]:
    """Collect JSON events from a subscribed pubsub until none came for `quiet` seconds (or, with `until`,
    until a status event with that status arrived)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is None:
            if until is None and time.monotonic() - last > quiet:
                break
            continue
        last = time.monotonic()
        events.append(json.loads(message["data"]))
        if until is not None and events[-1].get("status") == until:
            break
    return events
