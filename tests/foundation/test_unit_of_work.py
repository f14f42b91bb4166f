"""After-commit hooks: run once after a commit, in order; dropped by a rollback."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.kit import unit_of_work
from app.kit.db import AsyncSessionMaker
from app.models import Tenant


async def _tenant_exists(sessionmaker: AsyncSessionMaker, tenant_id: uuid.UUID) -> bool:
    async with sessionmaker() as session:
        return await session.scalar(select(Tenant.id).where(Tenant.id == tenant_id)) is not None


async def test_hooks_run_after_the_commit_in_order_and_once(sessionmaker: AsyncSessionMaker) -> None:
    ran: list[str] = []
    async with sessionmaker() as session:
        tenant = Tenant(name="uow")
        session.add(tenant)
        await session.flush()

        async def first() -> None:
            # Another connection sees the row: the hook runs after the commit, not before.
            ran.append(f"first saw the row: {await _tenant_exists(sessionmaker, tenant.id)}")

        async def second() -> None:
            ran.append("second")

        unit_of_work.after_commit(session, first)
        unit_of_work.after_commit(session, second)
        assert ran == [] and unit_of_work.pending_hooks(session) == 2
        await unit_of_work.commit(session)
        assert ran == ["first saw the row: True", "second"]
        await unit_of_work.commit(session)  # a later commit does not run them again
    assert ran == ["first saw the row: True", "second"]


async def test_a_rollback_drops_the_hooks(sessionmaker: AsyncSessionMaker) -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("dropped hook ran")

    async with sessionmaker() as session:
        tenant = Tenant(name="uow")
        session.add(tenant)
        await session.flush()
        unit_of_work.after_commit(session, hook)
        await unit_of_work.rollback(session)
        assert unit_of_work.pending_hooks(session) == 0
        # The next transaction of the same session commits without the dropped hook.
        await unit_of_work.commit(session)
    assert ran == []
    assert not await _tenant_exists(sessionmaker, tenant.id)


async def test_a_failing_hook_neither_undoes_the_commit_nor_stops_the_others(
    sessionmaker: AsyncSessionMaker,
) -> None:
    ran: list[str] = []

    async def failing() -> None:
        raise ConnectionError("redis is away")

    async def after() -> None:
        ran.append("after")

    async with sessionmaker() as session:
        tenant = Tenant(name="uow")
        session.add(tenant)
        await session.flush()
        unit_of_work.after_commit(session, failing)
        unit_of_work.after_commit(session, after)
        await unit_of_work.commit(session)
    assert ran == ["after"]
    assert await _tenant_exists(sessionmaker, tenant.id)
