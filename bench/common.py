"""Shared set-up for benchmarks: real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, or embedded ones)."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy.engine import make_url

from app.kit.db import libpq_url
from app.kit.logging import configure_logging
from app.kit.migrations import upgrade
from mostrador.embedded import embedded_servers

# Overridable so that two people benchmarking on one shared PostgreSQL server do not drop each other's database.
BENCH_DATABASE = os.environ.get("MOSTRADOR_BENCH_DATABASE", "mostrador_bench")
BENCH_REDIS_DB = 14


@contextlib.contextmanager
def bench_servers(database: str = BENCH_DATABASE) -> Iterator[tuple[str, str]]:
    """Yield (database_url, redis_url) of a freshly migrated database and an empty Redis database. `database`:
    a bench of its own may run beside another on one server."""
    configure_logging(level="INFO")  # to stderr: stdout carries the benchmark's JSON only
    root = Path(tempfile.mkdtemp(prefix="mostrador-bench-"))
    os.chmod(root, 0o755)
    with embedded_servers(
        root, database_url=os.environ.get("DATABASE_URL"), redis_url=os.environ.get("REDIS_URL")
    ) as (server_db, server_redis):
        server = libpq_url(server_db)
        _admin(
            server,
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'CREATE DATABASE "{database}"',
        )
        database_url = make_url(server).set(database=database).render_as_string(hide_password=False)
        upgrade(database_url)
        redis_url = urlsplit(server_redis)._replace(path=f"/{BENCH_REDIS_DB}").geturl()
        yield database_url, redis_url


def _admin(server_url: str, *statements: str) -> None:
    import asyncio

    async def run() -> None:
        url = make_url(server_url).set(database="postgres").render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def median_p90(times: list[float]) -> dict[str, float]:
    """Median and 90th percentile of seconds, in milliseconds: the summary of the interleaved A/B benchmarks."""
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 2),
    }
