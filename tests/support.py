"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


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
