"""Real PostgreSQL and Redis for every test.

`DATABASE_URL` / `REDIS_URL` (when set) name the servers to use; otherwise embedded servers are started once
for the whole run (in the xdist controller, so the workers share them). Each xdist worker gets its own
database, built by `alembic upgrade head`, and its own Redis database number. Tests are isolated by truncating
every table and flushing Redis after each test: several tests start other processes that must see committed
rows, which a rolled-back outer transaction would hide.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import structlog
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Environment, Settings, WhatsAppDriver
from app.kit.db import AsyncSessionMaker, create_engine, create_sessionmaker, libpq_url
from app.kit.migrations import upgrade
from app.kit.redis import create_redis
from app.main import create_app
from app.models import Base
from mostrador import as_root
from mostrador.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.streaming import StreamingASGITransport
from tests.support import ClientMaker, admin_execute, bearer, insert_user, login, signup

_embedded: list[EmbeddedPostgres | EmbeddedRedis] = []


def pytest_configure(config: pytest.Config) -> None:
    # Plain tracebacks: structlog's default renders each one with rich, locals included, which takes long
    # enough to starve the event loop when a test's outage makes every retry log one.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
        ]
    )
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller already set the environment
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    # A 0700 directory: as root, the embedded PostgreSQL then keeps its data under /var/lib/mostrador.
    root = Path(tempfile.mkdtemp(prefix="mostrador-test-"))
    if not os.environ.get("DATABASE_URL"):
        postgres = EmbeddedPostgres(root)
        os.environ["DATABASE_URL"] = postgres.start()
        _embedded.append(postgres)
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis(root)
        os.environ["REDIS_URL"] = redis.start()
        _embedded.append(redis)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _embedded:
        server = _embedded.pop()
        server.stop()
        as_root.remove_data(server.root)
        shutil.rmtree(server.root, ignore_errors=True)


# Two test runs on one machine (say, a developer's and an agent's) keep apart with MOSTRADOR_TEST_SLOT=1..2:
# each slot has its own databases and Redis numbers, for up to four xdist workers.
SLOT = int(os.environ.get("MOSTRADOR_TEST_SLOT", "0"))


@pytest.fixture(scope="session")
def worker_id_number(worker_id: str) -> int:
    number = 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))
    return 4 * SLOT + number


@pytest.fixture(scope="session")
def database_url(worker_id_number: int) -> Iterator[str]:
    server = libpq_url(os.environ["DATABASE_URL"])
    name = f"mostrador_test_{worker_id_number}"
    admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url


@pytest.fixture(scope="session")
def redis_url(worker_id_number: int) -> str:
    # Database 0 is left to whoever else uses this Redis; each xdist worker takes its own number.
    return urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{1 + worker_id_number}").geturl()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        env=Environment.testing,
        database_url=database_url,
        redis_url=redis_url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        whatsapp_driver=WhatsAppDriver.simulator,
        data_dir=tmp_path_factory.mktemp("data"),
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> AsyncSessionMaker:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Leave PostgreSQL and Redis empty after each test that touched them."""
    yield
    if "engine" in request.fixturenames:
        engine: AsyncEngine = request.getfixturevalue("engine")
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    if "redis" in request.fixturenames:
        redis: Redis = request.getfixturevalue("redis")
        await redis.flushdb()


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine, redis: Redis) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def make_client(app: FastAPI) -> AsyncIterator[ClientMaker]:
    """Clients of the test app, each with its own credential (a bearer token or API key, or none)."""
    clients: list[AsyncClient] = []

    def make(credential: str | None = None, *, streaming: bool = False) -> AsyncClient:
        transport = StreamingASGITransport(app) if streaming else ASGITransport(app=app)
        http = AsyncClient(transport=transport, base_url="http://test", headers=bearer(credential))
        clients.append(http)
        return http

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture
async def client(make_client: ClientMaker) -> AsyncClient:
    """Authenticated as the owner of a freshly signed-up tenant."""
    return make_client(await signup(make_client()))


@pytest.fixture
async def sse_client(make_client: ClientMaker) -> AsyncClient:
    """Like `client`, reading responses as they stream (server-sent events)."""
    return make_client(await signup(make_client()), streaming=True)


@pytest.fixture
async def other_client(make_client: ClientMaker) -> AsyncClient:
    """The owner of a second tenant: must never see the first one's data."""
    return make_client(await signup(make_client(), business_name="Otro Negocio"))


@pytest.fixture
async def viewer_client(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> AsyncClient:
    """A viewer (read-only) of `client`'s tenant."""
    tenant_id = (await client.get("/v1/users/me")).json()["tenant"]["id"]
    email = await insert_user(sessionmaker, tenant_id=tenant_id, role="viewer")
    return make_client(await login(make_client(), email))
