"""Leases on Redis keys: one owner per store for the session managers and for the workers.

`SET key token NX PX ttl` takes a lease; a compare-and-set script renews or releases only the caller's own.
An owner that cannot renew in time must stop touching what the lease covers at once: after `ttl` another
process may hold it.
"""

from __future__ import annotations

import secrets
import time
import uuid

from redis.asyncio import Redis
from structlog.typing import FilteringBoundLogger

from app.contracts import lease_store_id

RENEW_SCRIPT = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
"""
RELEASE_SCRIPT = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""


class Leases:
    """The leases one process holds, with the time each was last confirmed."""

    def __init__(self, redis: Redis, *, ttl_seconds: float, owner: str | None = None) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = owner or secrets.token_hex(12)
        self._confirmed: dict[str, float] = {}  # key -> monotonic time the lease was last known ours

    def held(self) -> list[str]:
        return list(self._confirmed)

    def holds(self, key: str) -> bool:
        """Ours, and certainly not expired: confirmed less than a ttl ago (with a margin for clock steps)."""
        confirmed = self._confirmed.get(key)
        return confirmed is not None and (time.monotonic() - confirmed) * 1000 < self.ttl_ms * 0.9

    async def acquire(self, key: str) -> bool:
        started = time.monotonic()
        if await self.redis.set(key, self.token, nx=True, px=self.ttl_ms):
            self._confirmed[key] = started
            return True
        return False

    async def renew(self) -> list[str]:
        """Renew every lease; return the keys that are no longer ours (forgotten here)."""
        keys = list(self._confirmed)
        if not keys:
            return []
        started = time.monotonic()
        held = await self.redis.eval(RENEW_SCRIPT, len(keys), *keys, self.token, str(self.ttl_ms))
        lost = []
        for key, ok in zip(keys, held, strict=True):
            if ok:
                self._confirmed[key] = started
            else:
                lost.append(key)
                self._confirmed.pop(key, None)
        return lost

    async def renew_all(self, log: FilteringBoundLogger) -> list[uuid.UUID]:
        """Renew every lease; return the stores whose lease is lost (forgotten here), which the caller must drop
        at once."""
        try:
            lost = await self.renew()
        except Exception:
            # Redis unreachable: past the lease's lifetime another process may own the store.
            lost = self.expired()
            log.warning("lease renewal failed", exc_info=True)
        store_ids = []
        for key in lost:
            store_id = lease_store_id(key)
            log.warning("lease lost; dropping the store", store_id=str(store_id))
            self.forget(key)
            store_ids.append(store_id)
        return store_ids

    def expired(self) -> list[str]:
        """Leases we could not renew in time (Redis unreachable): treat them as lost."""
        return [key for key in self._confirmed if not self.holds(key)]

    def forget(self, key: str) -> None:
        self._confirmed.pop(key, None)

    async def release(self, *keys: str) -> None:
        for key in keys:
            self._confirmed.pop(key, None)
        if keys:
            await self.redis.eval(RELEASE_SCRIPT, len(keys), *keys, self.token)


async def fair_share(redis: Redis, registry_key: str, member: str, *, wanted: int, ttl_seconds: float) -> int:
    """Heartbeat `member` into the registry of live processes and return its share of `wanted` items:
    ceil(wanted / live processes). Processes silent for a lease's lifetime count as gone."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(registry_key, {member: now})
        pipe.zremrangebyscore(registry_key, "-inf", now - ttl_seconds)
        pipe.zcard(registry_key)
        *_, live = await pipe.execute()
    return max(1, -(-wanted // max(1, int(live))))
