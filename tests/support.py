"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Protocol

import asyncpg
from httpx import AsyncClient
from sqlalchemy.engine import make_url

from app.auth.passwords import hash_password
from app.kit.db import AsyncSessionMaker
from app.models import Store, Tenant, User

PASSWORD = "correct horse battery staple"


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


class ClientMaker(Protocol):
    def __call__(self, credential: str | None = None, *, streaming: bool = False) -> AsyncClient: ...


def bearer(credential: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"} if credential else {}


def new_email() -> str:
    return f"owner-{uuid.uuid4().hex[:12]}@example.com"


async def signup(http: AsyncClient, *, email: str | None = None, business_name: str = "Kiosco") -> str:
    """Sign a new tenant and its owner up through the API; return the owner's access token."""
    body = {"email": email or new_email(), "password": PASSWORD, "business_name": business_name}
    response = await http.post("/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


async def login(http: AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await http.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def insert_user(
    sessionmaker: AsyncSessionMaker, *, tenant_id: str, role: str, password: str = PASSWORD
) -> str:
    """A user of an existing tenant, written straight to the database (invites are the API's way); its email."""
    email = new_email()
    async with sessionmaker() as session, session.begin():
        session.add(
            User(
                tenant_id=uuid.UUID(tenant_id),
                email=email,
                password_hash=await hash_password(password),
                role=role,
            )
        )
    return email


async def create_api_key(http: AsyncClient, **body: Any) -> dict[str, Any]:
    """An API key of `http`'s tenant; the answer includes the key itself (`key`)."""
    response = await http.post("/v1/api-keys", json={"name": "test key", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
