from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    # health_check_interval: a connection idle behind a NAT or a restarted Redis is noticed before use.
    return Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_connect_timeout=5)


StreamEntries = list[tuple[str, list[tuple[str, dict[str, str]]]]]


async def read_group(
    redis: Redis, group: str, consumer: str, streams: dict[str, str], *, count: int, block: int | None = None
) -> StreamEntries:
    """XREADGROUP with its reply typed (redis-py types it loosely); entries deleted meanwhile are skipped."""
    reply: Any = await redis.xreadgroup(group, consumer, streams, count=count, block=block)  # type: ignore[arg-type]
    return [
        (stream, [(entry_id, fields) for entry_id, fields in entries if fields is not None])
        for stream, entries in (reply or [])
    ]
