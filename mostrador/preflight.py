"""Checks before a process starts, so that what an operator can get wrong (a port in use, a data dir that cannot
be written, a DATABASE_URL or REDIS_URL that does not answer or refuses us) ends the start with one plain line
saying what is wrong and what to do, instead of a traceback from deep inside a library."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception classes are used
import redis.asyncio
import redis.exceptions
from sqlalchemy.engine import URL, make_url

from app.kit.db import libpq_url
from app.kit.redis import seed_url

CONNECT_TIMEOUT = 5.0


class StartupError(RuntimeError):
    """A start that cannot go on; the message says what is wrong and what to do."""


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound now: a port in use is found before anything else starts, and no other
    process can take the port between this check and the server's start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} is in use: stop what uses it, or set MOSTRADOR_PORT / --port to a free one"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise StartupError(
                f"not allowed to listen on port {port} (ports below 1024 need root): set MOSTRADOR_PORT / "
                "--port to one above 1024"
            ) from exc
        raise StartupError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): set MOSTRADOR_HOST to an address of "
            "this machine (127.0.0.1, or 0.0.0.0 for all)"
        ) from exc
    return sock


def check_data_dir(data_dir: Path) -> None:
    """The data dir exists (or can be made) and we can write into it."""
    what_to_do = "choose another with MOSTRADOR_DATA_DIR / --data-dir, or fix its permissions"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError) or (data_dir.exists() and not data_dir.is_dir()):
            reason = "it exists and is not a directory"
        raise StartupError(f"cannot write the data dir {data_dir} ({reason}): {what_to_do}") from exc


def _reason(exc: BaseException) -> str:
    """The system's words for a failed connection ("Connection refused"), found along the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def _shown(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


async def _check_database(url: str) -> None:
    try:
        parsed = make_url(libpq_url(url))
    except Exception as exc:  # sqlalchemy's ArgumentError, or our ValueError for another backend
        raise StartupError(
            f"DATABASE_URL is not a PostgreSQL URL ({exc}): use postgresql://user:password@host:5432/database"
        ) from exc
    where, user, db = _shown(parsed), parsed.username or os.environ.get("USER", ""), parsed.database
    fix = "fix DATABASE_URL (or unset it: `mostrador run` then starts an embedded PostgreSQL)"
    try:
        conn = await asyncpg.connect(libpq_url(url), timeout=CONNECT_TIMEOUT)
    except asyncpg.InvalidPasswordError as exc:
        raise StartupError(f"PostgreSQL at {where} refused user {user!r}: wrong password; {fix}") from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise StartupError(
            f"PostgreSQL at {where} has no database {db!r}: create it (`createdb {db}`), or {fix}"
        ) from exc
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise StartupError(f"PostgreSQL at {where} refused user {user!r} ({exc}); {fix}") from exc
    except asyncpg.PostgresError as exc:
        raise StartupError(f"PostgreSQL at {where} refused the connection ({exc}); {fix}") from exc
    except TimeoutError as exc:
        raise StartupError(
            f"PostgreSQL at {where} does not answer (nothing within {CONNECT_TIMEOUT:.0f} s): start it, or {fix}"
        ) from exc
    except OSError as exc:
        raise StartupError(
            f"PostgreSQL at {where} does not answer ({_reason(exc)}): start it, or {fix}"
        ) from exc
    await conn.close()


async def _check_redis(url: str) -> None:
    fix = "fix REDIS_URL (or unset it: `mostrador run` then starts an embedded Redis)"
    try:
        # A cluster (`redis+cluster://`): its first seed node answers for it here.
        client = redis.asyncio.Redis.from_url(
            seed_url(url), socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        where = f"{client.connection_pool.connection_kwargs.get('host', 'localhost')}:" + str(
            client.connection_pool.connection_kwargs.get("port", 6379)
        )
    except ValueError as exc:
        raise StartupError(f"REDIS_URL is not a Redis URL ({exc}): use redis://host:6379/0") from exc
    try:
        await client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise StartupError(f"Redis at {where} refused the password ({exc}); {fix}") from exc
    except redis.exceptions.ResponseError as exc:
        raise StartupError(f"Redis at {where} refused us ({exc}); {fix}") from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise StartupError(f"Redis at {where} does not answer ({_reason(exc)}): start it, or {fix}") from exc
    finally:
        await client.aclose()


def check_servers(database_url: str | None, redis_url: str | None) -> None:
    """Connect once to each server given; raise StartupError saying what is wrong with the first that fails."""

    async def run() -> None:
        if database_url:
            await _check_database(database_url)
        if redis_url:
            await _check_redis(redis_url)

    asyncio.run(run())
