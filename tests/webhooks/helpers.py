"""A real HTTP receiver on 127.0.0.1, a clock the tests move, and a webhook worker running in this process."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.webhooks.urls import Lookup
from workers.webhooks.service import WebhookWorker


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    path: str

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


# Decides each answer: (request number from 0, the request) -> (status, headers, delay in seconds).
Policy = Callable[[int, Received], tuple[int, dict[str, str], float]]


def always(status: int = 200) -> Policy:
    return lambda _n, _r: (status, {}, 0.0)


@dataclass
class Receiver:
    """Records every request (answered or not) and answers as `policy` says."""

    policy: Policy = field(default_factory=always)
    answer: Callable[[Received], bytes] | None = None  # the body of a 2xx answer (default: {"ok": true})
    requests: list[Received] = field(default_factory=list)
    answered: list[tuple[Received, int]] = field(default_factory=list)
    port: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: Request) -> Response:
        received = Received(
            {k.lower(): v for k, v in request.headers.items()}, await request.body(), request.url.path
        )
        number = len(self.requests)
        self.requests.append(received)
        async with self._changed:
            self._changed.notify_all()
        status, headers, delay = self.policy(number, received)
        if delay:
            await asyncio.sleep(delay)  # a slow receiver
        self.answered.append((received, status))
        async with self._changed:
            self._changed.notify_all()
        body = b'{"ok": true}' if self.answer is None else self.answer(received)
        if status >= 300:
            body = b"nope"
        return Response(body, status_code=status, headers=headers)

    # Generous: the fan-out waits for the visibility horizon, which any long transaction on the (shared) server
    # holds back, other databases' too.
    async def wait(self, predicate: Callable[[], bool], timeout: float = 90, what: str = "requests") -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}: {len(self.requests)} requests") from None

    def succeeded(self) -> list[Received]:
        return [r for r, status in self.answered if 200 <= status < 300]


@asynccontextmanager
async def running_receiver(
    policy: Policy | None = None, answer: Callable[[Received], bytes] | None = None
) -> AsyncIterator[Receiver]:
    receiver = Receiver(policy or always(), answer)
    app = Starlette(routes=[Route("/{path:path}", receiver._handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=[sock])
    task = asyncio.create_task(server.main_loop())
    try:
        yield receiver
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await server.shutdown(sockets=[sock])
        sock.close()


class Clock:
    """The worker's time: starts now, moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@asynccontextmanager
async def running_webhooks(
    settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
    *,
    clock: Clock | None = None,
    lookup: Lookup | None = None,
    allow_private: bool = True,
) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(
        settings.model_copy(update={"webhooks_allow_private_networks": allow_private}),
        sessionmaker,
        redis,
        redis_url,
        clock=clock,
        rng=random.Random(7),
        lookup=lookup,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 90, what: str = "condition"
) -> Any:
    """Poll `probe` (a database state: there is no signal to wait on) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def new_id() -> str:
    return uuid.uuid4().hex
