"""Database engine and sessions. No module-level engine: each process builds its own and passes it on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

AsyncSessionMaker = async_sessionmaker[AsyncSession]


def async_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` forms and select the asyncpg driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got backend {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The plain `postgresql://` form that libpq-style clients (asyncpg.connect, whatsmeow) understand."""
    return make_url(async_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pre_ping: bool = True,
    application_name: str = "mostrador",
) -> AsyncEngine:
    """`pre_ping` costs three round trips per checkout. The hot processes (session manager, worker) turn it
    off: they retry what fails on a dead connection, and the first such failure after a PostgreSQL restart
    makes SQLAlchemy recycle the whole pool."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=pre_ping,
        # Errors name the statement, never its parameters (customers' texts, hashes): they reach the logs.
        hide_parameters=True,
        connect_args={
            "server_settings": {
                "application_name": application_name,
                # asyncpg prepares every statement; PostgreSQL's generic plan for a prepared statement over
                # unnest() arrays guesses ten rows and hash-joins a sequential scan of the whole table. A custom
                # plan, made with the arrays at hand, looks rows up by index.
                "plan_cache_mode": "force_custom_plan",
                # Index lookups priced as on SSDs (the default prices spinning disks, and then a few hundred
                # primary-key lookups lose to a sequential scan of a table of tens of thousands of rows).
                "random_page_cost": "1.1",
            },
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> AsyncSessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def single_statement(sessionmaker: AsyncSessionMaker) -> AsyncIterator[AsyncSession]:
    """A session in autocommit mode, for work that is one statement (atomic by itself): no BEGIN and COMMIT
    round trips around it."""
    bind = sessionmaker.kw["bind"]
    async with sessionmaker(bind=bind.execution_options(isolation_level="AUTOCOMMIT")) as session:
        yield session


@asynccontextmanager
async def transaction(sessionmaker: AsyncSessionMaker) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessionmaker() as session, session.begin():
        yield session
