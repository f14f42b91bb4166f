"""Waiting for the change log's visibility horizon (app/events/repository.py)."""

from __future__ import annotations

from sqlalchemy import text

from app.kit.db import AsyncSessionMaker
from tests.sessions.helpers import wait_for


async def settled(sessionmaker: AsyncSessionMaker) -> None:
    """Wait until every transaction that began before now has ended (the horizon passed it): the feed then
    shows everything committed so far. Other developers' and tests' transactions on the shared server may
    hold it back a moment."""
    async with sessionmaker() as session, session.begin():
        now = int(await session.scalar(text("SELECT pg_current_xact_id()::text::bigint")) or 0)

    async def passed() -> bool:
        async with sessionmaker() as session:
            horizon = await session.scalar(
                text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            )
            return int(horizon or 0) > now

    await wait_for(passed, timeout=120, interval=0.01, what="the horizon to pass the writes")
