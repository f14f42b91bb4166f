"""`stores:changed`: a store id reconciles that store at once and only it; `handover` / `rebalance` reconcile
every store; the full sweep itself is rare."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from app.config import Settings
from app.contracts import STORES_CHANGED_CHANNEL
from app.kit.db import AsyncSessionMaker, transaction
from app.models import DesiredState, Store
from sessions.manager import SessionManager
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status

ACTED_ON_WITHIN = 1.0  # seconds


async def _desire(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, desired: DesiredState) -> None:
    async with transaction(sessionmaker) as session:
        store = await session.get(Store, store_id)
        assert store is not None
        store.desired_state = desired.value


async def _full_reconciles(manager: SessionManager) -> int:
    return manager.full_reconciles


async def test_a_changed_store_is_reconciled_alone_and_at_once(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    named = await create_store(
        sessionmaker, redis, desired=DesiredState.unlinked, paired_phone="+5491155552001"
    )
    silent = await create_store(
        sessionmaker, redis, desired=DesiredState.unlinked, paired_phone="+5491155552002"
    )
    rare = fast_settings(settings, sessions_full_reconcile_seconds=3600)
    async with running_manager(rare, sessionmaker, redis, redis_url) as manager:
        await wait_for(lambda: _full_reconciles(manager), what="the first full reconcile")
        # Both want a connection now; only `named` is announced, as the API does after its commit.
        await _desire(sessionmaker, silent, DesiredState.linked)
        await _desire(sessionmaker, named, DesiredState.linked)
        await redis.publish(STORES_CHANGED_CHANNEL, str(named))
        await wait_status(sessionmaker, named, "connected", timeout=ACTED_ON_WITHIN)
        # A full reconcile would have taken `silent` too.
        assert silent not in manager.sessions and manager.full_reconciles == 1

        # Unlinked on request: released at once.
        await _desire(sessionmaker, named, DesiredState.unlinked)
        await redis.publish(STORES_CHANGED_CHANNEL, str(named))
        await wait_status(sessionmaker, named, "unlinked", timeout=ACTED_ON_WITHIN)
        assert named not in manager.sessions and manager.full_reconciles == 1

        # A rebalance (or a handover) is for every store: `silent` is found now.
        await redis.publish(STORES_CHANGED_CHANNEL, "rebalance")
        await wait_status(sessionmaker, silent, "connected", timeout=ACTED_ON_WITHIN)
        assert manager.full_reconciles == 2
