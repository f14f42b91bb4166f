"""Login attempts counted in Redis, per client IP and per account, in fixed windows.

`INCR` + `EXPIRE` in one pipeline: the first attempt of a window creates the counter, which expires with the
window, so nothing needs cleaning. Every attempt counts (right or wrong): a guesser cannot reset its counter by
logging into an account of its own. Shared by all API replicas through Redis.
"""

from __future__ import annotations

import hashlib
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.auth.errors import TooManyAttempts
from app.kit.errors import ServiceUnavailable
from app.kit.redis import is_cluster


def login_attempts_key(kind: str, value: str, window: int) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no email addresses in Redis key names
    return f"ratelimit:login:{kind}:{digest}:{window}"


async def count_login_attempt(
    redis: Redis, *, ip: str, email: str, per_ip: int, per_account: int, window_seconds: int
) -> None:
    """Count one attempt; raise 429 (with Retry-After: the end of the window) when over either limit."""
    now = time.time()
    window = int(now // window_seconds)
    keys = (login_attempts_key("ip", ip, window), login_attempts_key("account", email, window))
    try:
        # MULTI needs one slot on a Redis Cluster, and the two keys are not in one: there each key's INCR and
        # EXPIRE still go together to its node, in order (a crash between them leaves a counter of a past window).
        async with redis.pipeline(transaction=not is_cluster(redis)) as pipe:
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, window_seconds + 1)
            ip_count, _, account_count, _ = await pipe.execute()
    except RedisError as exc:
        # Without its counters the limit cannot hold: refuse logins (503) rather than allow unlimited guesses.
        raise ServiceUnavailable("login is unavailable for a moment (rate limiter unreachable)") from exc
    if ip_count > per_ip or account_count > per_account:
        retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
        raise TooManyAttempts(retry_after)
