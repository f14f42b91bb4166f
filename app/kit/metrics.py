"""Prometheus metrics of every process (names agreed with the chart and dashboard: docs/architecture.md "Observe").

Each metric is made here, unregistered; a process registers the ones of its role (`register("worker")`), so the
API does not publish session or stream gauges that only the other processes fill. Label values are fixed sets:
thousands of stores must not multiply the series, so there is no store id label.

Hot paths stay cheap: the group-committed writers count once per batch (`count_messages(..., n)`), and the
gauges are measured when scraped (`add_scrape_hook`), not kept up to date per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Literal

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector
from redis.asyncio import Redis

log = structlog.get_logger(__name__)

Role = Literal["api", "sessions", "worker"]
Direction = Literal["in", "out"]
InboundStatus = Literal["received", "handled", "dead"]
OutboundStatus = Literal["sent", "failed", "delivered", "read"]
WebhookOutcome = Literal["succeeded", "retried", "failed"]

INBOUND_STATUSES: tuple[InboundStatus, ...] = ("received", "handled", "dead")
OUTBOUND_STATUSES: tuple[OutboundStatus, ...] = ("sent", "failed", "delivered", "read")
SESSION_STATUSES = ("unlinked", "linking", "connected", "reconnecting", "logged_out", "error")
WEBHOOK_OUTCOMES: tuple[WebhookOutcome, ...] = ("succeeded", "retried", "failed")

MESSAGES = Counter(
    "mostrador_messages",
    "Messages by direction and status reached: in (received = committed by the session manager, handled, "
    "dead = dead-lettered), out (sent, failed, delivered and read receipts).",
    ["direction", "status"],
    registry=None,
)
STREAM_LAG = Gauge(
    "mostrador_stream_lag_entries",
    "Entries not yet delivered to the owner, summed over the stores this process owns.",
    ["stream"],
    registry=None,
)
STREAM_PENDING = Gauge(
    "mostrador_stream_pending_entries",
    "Entries delivered to the owner and not acknowledged yet, summed over the stores this process owns.",
    ["stream"],
    registry=None,
)
HANDLING_SECONDS = Histogram(
    "mostrador_handling_seconds",
    "Inbound message committed -> the bot's effects (its replies) committed.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=None,
)
SESSIONS = Gauge(
    "mostrador_sessions", "Stores held by this session manager, by status.", ["status"], registry=None
)
RECONNECTS = Counter(
    "mostrador_reconnects", "Reconnect attempts of held stores' WhatsApp connections.", registry=None
)
SENDS_PACED = Counter(
    "mostrador_sends_paced",
    "Sends held back by a store's anti-ban caps (per store per second, per chat per minute).",
    registry=None,
)
SENDS_FAILED = Counter(
    "mostrador_sends_failed",
    "Network sends that failed (each attempt; a message that fails every attempt also counts as out/failed).",
    registry=None,
)
WEBHOOK_DELIVERIES = Counter(
    "mostrador_webhook_deliveries", "Webhook delivery attempts by outcome.", ["outcome"], registry=None
)
DLQ_ENTRIES = Gauge(
    "mostrador_dlq_entries", "Dead-letter entries of the stores this worker owns.", registry=None
)
HTTP_REQUESTS = Counter(
    "mostrador_http_requests",
    "API requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_SECONDS = Histogram(
    "mostrador_http_request_seconds",
    "API request duration (to the end of the response body) by method and route template.",
    ["method", "route"],
    registry=None,
)

_ROLES: dict[Role, tuple[Collector, ...]] = {
    "api": (HTTP_REQUESTS, HTTP_SECONDS),
    "sessions": (MESSAGES, STREAM_LAG, STREAM_PENDING, SESSIONS, RECONNECTS, SENDS_PACED, SENDS_FAILED),
    "worker": (MESSAGES, STREAM_LAG, STREAM_PENDING, HANDLING_SECONDS, WEBHOOK_DELIVERIES, DLQ_ENTRIES),
}

# Children looked up once: `labels()` takes a lock and a dict lookup per call.
_MESSAGES: dict[tuple[str, str], Counter] = {
    **{("in", s): MESSAGES.labels("in", s) for s in INBOUND_STATUSES},
    **{("out", s): MESSAGES.labels("out", s) for s in OUTBOUND_STATUSES},
}
_WEBHOOKS = {outcome: WEBHOOK_DELIVERIES.labels(outcome) for outcome in WEBHOOK_OUTCOMES}
for _status in SESSION_STATUSES:
    SESSIONS.labels(_status)
for _stream in ("messages", "outbox"):
    STREAM_LAG.labels(_stream)
    STREAM_PENDING.labels(_stream)


def register(role: Role, registry: CollectorRegistry = REGISTRY) -> None:
    """Publish the role's metrics (besides the default process collectors). Once per process and role."""
    for collector in _ROLES[role]:
        with contextlib.suppress(ValueError):  # registered already (several roles in one test process)
            registry.register(collector)


# --- recording ---------------------------------------------------------------------------------------------
def count_messages(direction: Direction, status: InboundStatus | OutboundStatus, n: int = 1) -> None:
    """`n` messages of a batch reached `status`."""
    if n > 0:
        _MESSAGES[(direction, status)].inc(n)


def record_webhook_delivery(outcome: WebhookOutcome, n: int = 1) -> None:
    """A webhook delivery attempt ended: `succeeded`, `retried` (failed, another attempt is scheduled) or
    `failed` (failed for good)."""
    if n > 0:
        _WEBHOOKS[outcome].inc(n)


def observe_handling(seconds: Collection[float]) -> None:
    for value in seconds:
        HANDLING_SECONDS.observe(max(0.0, value))


# --- scraping ------------------------------------------------------------------------------------------------
ScrapeHook = Callable[[], Awaitable[None]]
_hooks: list[ScrapeHook] = []
HOOK_TIMEOUT = 2.0


def add_scrape_hook(hook: ScrapeHook) -> None:
    """`hook` refreshes gauges before each scrape (bounded by HOOK_TIMEOUT; a failure leaves the last values)."""
    _hooks.append(hook)


def remove_scrape_hook(hook: ScrapeHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


async def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The metrics in the Prometheus text format, gauges refreshed first."""
    for hook in list(_hooks):
        try:
            await asyncio.wait_for(hook(), HOOK_TIMEOUT)
        except Exception as exc:  # Redis away, say: the scrape still answers, with the last values
            log.warning("refreshing metrics failed", error=str(exc)[:200])
    return generate_latest(registry)


class StreamDepths:
    """Lag and pending entries of the owned streams (and dead letters), measured when scraped with one
    pipeline of XINFO GROUPS, at most every `min_interval` seconds (several scrapers share a measurement)."""

    def __init__(
        self,
        redis: Redis,
        *,
        label: Literal["messages", "outbox"],
        group: str,
        stream_of: Callable[[uuid.UUID], str],
        owned: Callable[[], Collection[uuid.UUID]],
        dlq_of: Callable[[uuid.UUID], str] | None = None,
        min_interval: float = 1.0,
    ) -> None:
        self.redis, self.label, self.group = redis, label, group
        self.stream_of, self.owned, self.dlq_of = stream_of, owned, dlq_of
        self.min_interval = min_interval
        self._measured = -float("inf")

    async def __call__(self) -> None:
        if time.monotonic() - self._measured < self.min_interval:
            return
        stores = list(self.owned())
        lag = pending = dead = 0
        if stores:
            async with self.redis.pipeline(transaction=False) as pipe:
                for store_id in stores:
                    pipe.xinfo_groups(self.stream_of(store_id))
                    if self.dlq_of is not None:
                        pipe.xlen(self.dlq_of(store_id))
                replies = await pipe.execute(raise_on_error=False)
            step = 2 if self.dlq_of is not None else 1
            for n in range(0, len(replies), step):
                groups = replies[n]
                if isinstance(groups, list):
                    for group in groups:
                        if _text(group.get("name")) == self.group:
                            # `lag` is None when Redis cannot tell (after deletions; and before Redis 7).
                            lag += int(group.get("lag") or 0)
                            pending += int(group.get("pending") or 0)
                if step == 2 and isinstance(replies[n + 1], int):
                    dead += replies[n + 1]
        STREAM_LAG.labels(self.label).set(lag)
        STREAM_PENDING.labels(self.label).set(pending)
        if self.dlq_of is not None:
            DLQ_ENTRIES.set(dead)
        self._measured = time.monotonic()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
