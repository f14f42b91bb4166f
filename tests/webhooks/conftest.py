from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.support import bearer, signup


@pytest.fixture
def private_settings(settings: Settings) -> Settings:
    """The receivers of these tests listen on 127.0.0.1: what MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS allows."""
    return settings.model_copy(update={"webhooks_allow_private_networks": True})


@pytest.fixture
async def private_client(
    private_settings: Settings, engine: AsyncEngine, redis: Redis
) -> AsyncIterator[AsyncClient]:
    """A store owner's client of an API that lets webhooks point at 127.0.0.1."""
    app = create_app(private_settings)
    async with app.router.lifespan_context(app):
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
        http.headers.update(bearer(await signup(http)))
        yield http
        await http.aclose()
