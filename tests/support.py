"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from httpx import AsyncClient
from sqlalchemy.engine import make_url

from app.kit.db import AsyncSessionMaker
from app.models import Store, Tenant


def execute(url: str, *statements: str) -> list[list[Any]]:
    """Run statements one by one outside any transaction (CREATE/DROP DATABASE need that); return their rows."""

    async def run() -> list[list[Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [[tuple(row) for row in await conn.fetch(statement)] for statement in statements]
        finally:
            await conn.close()

    return asyncio.run(run())


def admin_execute(server_url: str, *statements: str) -> None:
    """Run statements on the server's `postgres` database."""
    execute(make_url(server_url).set(database="postgres").render_as_string(hide_password=False), *statements)


async def post_store(client: AsyncClient, name: str = "Kiosco") -> str:
    """Create a store of the test tenant through the API; return its id."""
    response = await client.post("/v1/stores", json={"name": name})
    assert response.status_code == 201, response.text
    store_id: str = response.json()["id"]
    return store_id


async def insert_other_tenant_store(sessionmaker: AsyncSessionMaker) -> uuid.UUID:
    """A store of another tenant, written straight to the database: the API must never show it."""
    async with sessionmaker() as session, session.begin():
        tenant = Tenant(name="other")
        session.add(tenant)
        await session.flush()
        store = Store(tenant_id=tenant.id, name="Not yours")
        session.add(store)
        await session.flush()
        return store.id
