"""Leases against a real Redis: renewal, loss to another owner, and the retake after Redis lost its data."""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.asyncio import Redis

from app.kit.leases import RETRY_SECONDS, Leases
from app.kit.redis import create_redis
from mostrador.embedded import free_port

KEY = "lease:test:store-00000000-0000-0000-0000-000000000001"


async def test_a_lease_is_exclusive_and_renewal_keeps_it(redis: Redis) -> None:
    ours, theirs = Leases(redis, ttl_seconds=5), Leases(redis, ttl_seconds=5)
    assert await ours.acquire(KEY)
    assert not await theirs.acquire(KEY)
    assert await ours.renew() == []
    assert ours.holds(KEY)
    assert await redis.get(KEY) == ours.token


async def test_a_key_taken_by_another_owner_is_lost_not_retaken(redis: Redis) -> None:
    ours = Leases(redis, ttl_seconds=5)
    assert await ours.acquire(KEY)
    await redis.set(KEY, "someone-else")
    assert await ours.renew() == [KEY]
    assert not ours.holds(KEY)
    assert await redis.get(KEY) == "someone-else"


async def test_a_vanished_key_is_taken_again_while_our_lease_runs(redis: Redis) -> None:
    ours = Leases(redis, ttl_seconds=5)
    assert await ours.acquire(KEY)
    await redis.delete(KEY)  # what a Redis restarted without its data looks like
    assert await ours.renew() == []
    assert ours.retaken == [KEY]
    assert await redis.get(KEY) == ours.token
    assert 4000 < await redis.pttl(KEY) <= 5000


async def test_a_vanished_key_is_not_taken_again_after_our_lease_ran_out(redis: Redis) -> None:
    ours = Leases(redis, ttl_seconds=0.3)
    assert await ours.acquire(KEY)
    await asyncio.sleep(0.4)  # expired: another process may have owned and released it since
    assert await ours.renew() == [KEY]
    assert await redis.get(KEY) is None
    assert ours.held() == []


async def test_a_key_released_while_its_renewal_is_on_its_way_is_not_taken_again(redis: Redis) -> None:
    """A store handed over (its lease released) while a renewal that still names its key is on its way to
    Redis: the renewal finds the key gone and, as for a Redis that lost its data, would take it again, for a
    store nobody here serves. The store then stayed unserved (the SIGKILL reliability test lost a whole store's
    messages this way, under CPU load): the renewal must leave a released key released."""
    ours = Leases(redis, ttl_seconds=5)
    assert await ours.acquire(KEY)
    original = ours._renew_script

    async def renew_after_a_release(keys: list[str], running: list[str]) -> tuple[list[int | None], None]:
        await ours.release(KEY)  # the hand-over runs while the renewal's script is still to be sent
        held, error = await original(keys, running)
        assert held == [2] and error is None  # the script did take the missing key again
        return held, None

    ours._renew_script = renew_after_a_release  # type: ignore[method-assign]
    assert await ours.renew() == []
    assert ours.held() == [] and ours.retaken == []
    assert await redis.get(KEY) is None


async def test_renewal_retries_soon_while_redis_is_unreachable() -> None:
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    leases = Leases(dead, ttl_seconds=8)
    leases._confirmed[KEY] = time.monotonic()  # held, as if acquired just now
    try:
        assert leases.renew_interval() == 2.0
        assert await leases.renew_all(structlog.get_logger()) == []  # still within its lifetime: kept
        assert leases.renew_interval() == RETRY_SECONDS
        assert leases.holds(KEY)
    finally:
        await dead.aclose()
