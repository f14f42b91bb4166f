"""The session manager's and the worker's small HTTP listener: `/metrics`, `/healthz`, `/readyz`.

A few lines of asyncio rather than a web framework: three GET routes, served on the process's own event loop,
so that `/healthz` answering means the loop is not stuck and `/readyz` probes with the process's own pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit import metrics
from app.kit.errors import error_body

log = structlog.get_logger(__name__)

CHECK_TIMEOUT = 2.0
READ_TIMEOUT = 5.0


class Readiness:
    """Ready while PostgreSQL and Redis answer, and not stopping."""

    def __init__(self, engine: AsyncEngine, redis: Redis) -> None:
        self.engine, self.redis = engine, redis
        self.stopping = False

    async def not_ready_after(self, stop: asyncio.Event) -> None:
        """Once asked to stop, say so: the orchestrator sends no more work while the process drains."""
        await stop.wait()
        self.stopping = True

    async def check(self) -> tuple[bool, dict[str, str]]:
        async def postgres() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def redis() -> None:
            await self.redis.ping()

        checks = dict(await asyncio.gather(_probe("postgres", postgres), _probe("redis", redis)))
        if self.stopping:
            checks["process"] = "stopping"
        return all(result == "ok" for result in checks.values()), checks


async def _probe(name: str, probe: Callable[[], Awaitable[None]]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT:.0f} s"
    except Exception as exc:  # any failure means not ready; the body says which
        return name, f"{type(exc).__name__}: {exc}".strip()[:300]
    return name, "ok"


class OpsServer:
    def __init__(self, readiness: Readiness, *, host: str, port: int) -> None:
        self.readiness, self.host, self.port = readiness, host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen, unless the port is 0. A port taken is logged, not fatal: the process still does its work
        (and a probe of that port fails, which says so to the orchestrator)."""
        if not self.port:
            return
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            log.error("ops listener not started", host=self.host, port=self.port, error=str(exc))
            return
        log.info(
            "ops listener started", url=f"http://{self.host}:{self.port}", paths="/metrics /healthz /readyz"
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            status, content_type, body = await self._answer(method, path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return (
                "405 Method Not Allowed",
                "application/json",
                _json(error_body("method_not_allowed", "GET only", {})),
            )
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, await metrics.render()
        if path == "/healthz":
            return "200 OK", "application/json", _json({"status": "ok"})
        if path == "/readyz":
            ready, checks = await self.readiness.check()
            if ready:
                return "200 OK", "application/json", _json({"status": "ready", "checks": checks})
            failing = ", ".join(f"{name}: {result}" for name, result in checks.items() if result != "ok")
            body = error_body("not_ready", f"not ready ({failing})", checks)
            return "503 Service Unavailable", "application/json", _json(body)
        body = error_body("not_found", "only /metrics, /healthz and /readyz here", {})
        return "404 Not Found", "application/json", _json(body)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@contextlib.asynccontextmanager
async def ops_listener(readiness: Readiness, *, host: str, port: int) -> AsyncIterator[OpsServer]:
    server = OpsServer(readiness, host=host, port=port)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
