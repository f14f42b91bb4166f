from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.kit import unit_of_work
from app.kit.errors import CommitFailed
from app.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mostrador
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the endpoint returns, rolled back when it raises; the
    after-commit hooks run after the commit (see app/kit/unit_of_work.py).

    Declared with `scope="function"` (below): FastAPI then ends the dependency when the endpoint returns and
    before the response is sent. With its default scope the exit runs after the response is sent, so a client
    could read a 2xx for a change whose commit then failed. It also means a streaming response (the store
    events, open for hours) holds no database connection while it streams.
    """
    async with state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await unit_of_work.rollback(session)
            raise
        try:
            await unit_of_work.commit(session)
        except BaseException as exc:
            await unit_of_work.rollback(session)
            if isinstance(exc, DBAPIError):
                raise CommitFailed() from exc
            raise


def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


def get_redis(state: StateDep) -> Redis:
    return state.redis


def get_sim_redis(state: StateDep) -> Redis:
    return state.sim_redis


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SimRedisDep = Annotated[Redis, Depends(get_sim_redis)]
