from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis


def create_redis(url: str, *, max_connections: int = 64) -> Redis:
    # A blocking pool: a burst (a thousand stores stopping at once) waits for a connection instead of failing.
    # health_check_interval: a connection idle behind a NAT or a restarted Redis is noticed before use.
    # socket_timeout=None: redis-py 8 reads every reply under a 5 s timer by default, and arming one per
    # pipelined command cost a tenth of the session manager's CPU. A Redis that dies closes its sockets; one
    # that is unreachable is caught by TCP keepalive; both raise, and every caller retries.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=None,
        socket_keepalive=True,
    )
    return Redis(connection_pool=pool)


StreamEntries = list[tuple[str, list[tuple[str, dict[str, str]]]]]


# A blocking read that returned a partial batch waits this long before the caller reads again: under a steady
# trickle, reading (and then flushing) every entry alone costs a round trip per entry.
READ_LINGER = 0.003


async def read_group(
    redis: Redis, group: str, consumer: str, streams: dict[str, str], *, count: int, block: int | None = None
) -> StreamEntries:
    """XREADGROUP with its reply typed (redis-py types it loosely); entries deleted meanwhile are skipped."""
    reply: Any = await redis.xreadgroup(group, consumer, streams, count=count, block=block)  # type: ignore[arg-type]
    if block is not None and reply and sum(len(entries) for _, entries in reply) < count:
        await asyncio.sleep(READ_LINGER)
    return [
        (stream, [(entry_id, fields) for entry_id, fields in entries if fields is not None])
        for stream, entries in (reply or [])
    ]
