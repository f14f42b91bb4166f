from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    # health_check_interval: a connection idle behind a NAT or a restarted Redis is noticed before use.
    return Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_connect_timeout=5)
