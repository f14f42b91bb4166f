from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from mostrador.embedded import free_port
from tests.support import PASSWORD, new_email, signup

WINDOW = 60


@pytest.fixture
async def limited(settings: Settings, engine: AsyncEngine, redis: Redis) -> AsyncIterator[AsyncClient]:
    app = create_app(
        settings.model_copy(
            update={
                "login_limit_per_account": 3,
                "login_limit_per_ip": 5,
                "login_limit_window_seconds": WINDOW,
            }
        )
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_login_attempts_are_limited_per_account(limited: AsyncClient) -> None:
    email = new_email()
    await signup(limited, email=email)
    for _ in range(3):
        response = await limited.post("/v1/auth/login", json={"email": email, "password": "wrong guess"})
        assert response.status_code == 401
    for password in ("wrong guess", PASSWORD):  # over the limit, even the right password waits
        response = await limited.post("/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "too_many_attempts"
        assert 1 <= int(response.headers["retry-after"]) <= WINDOW


async def test_login_attempts_are_limited_per_ip(limited: AsyncClient, redis: Redis) -> None:
    # Five different accounts from one address: each under its own limit, the address over its one.
    statuses = [
        (await limited.post("/v1/auth/login", json={"email": new_email(), "password": "x"})).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert await redis.keys("ratelimit:login:ip:*")  # kept in Redis (shared by every API replica)


async def test_without_redis_login_is_refused_not_unlimited(settings: Settings, engine: AsyncEngine) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(settings.model_copy(update={"redis_url": dead_redis}))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        email = new_email()
        await signup(http, email=email)  # sign-up needs no Redis
        response = await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
