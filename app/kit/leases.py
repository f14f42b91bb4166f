"""Leases on Redis keys: one owner per store for the session managers and for the workers.

`SET key token NX PX ttl` takes a lease; a compare-and-set script renews or releases only the caller's own.
An owner that cannot renew in time must stop touching what the lease covers at once: after `ttl` another
process may hold it. A lease key that vanished while its lifetime was still running (a Redis restarted without
its data) was never anybody else's: its owner takes it again at the next renewal instead of dropping the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from structlog.typing import FilteringBoundLogger

from app.contracts import lease_store_id
from app.kit.redis import group_by_slot

# Per key: 1 renewed, 2 taken again (the key was gone and ARGV[2 + i] said our lease was still running), 0 not
# ours. A key cannot expire while its lifetime runs, so a missing key was deleted: by a Redis that lost its data.
RENEW_SCRIPT = """
local held = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  elseif not value and ARGV[2 + i] == '1' then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    held[i] = 2
  else
    held[i] = 0
  end
end
return held
"""
RETRY_SECONDS = 0.2  # between renewals while Redis is unreachable (each fails fast: connection refused)
RELEASE_SCRIPT = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""


class PartialRenewal(Exception):
    """Some cluster nodes did not answer a renewal; `lost`: the leases the others reported lost."""

    def __init__(self, lost: list[str]) -> None:
        super().__init__(f"lease renewal reached only part of the cluster ({len(lost)} lost)")
        self.lost = lost


class Leases:
    """The leases one process holds, with the time each was last confirmed."""

    def __init__(self, redis: Redis, *, ttl_seconds: float, owner: str | None = None) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = owner or secrets.token_hex(12)
        self._confirmed: dict[str, float] = {}  # key -> monotonic time the lease was last known ours
        self.retaken: list[str] = []  # keys the last renewal found gone and took again
        self.reachable = True  # the last renewal reached Redis

    def held(self) -> list[str]:
        return list(self._confirmed)

    def holds(self, key: str) -> bool:
        """Ours, and certainly not expired: confirmed less than a ttl ago (with a margin for clock steps)."""
        return self._running(key, time.monotonic())

    async def acquire(self, key: str) -> bool:
        started = time.monotonic()
        if await self.redis.set(key, self.token, nx=True, px=self.ttl_ms):
            self._confirmed[key] = started
            return True
        return False

    async def renew(self) -> list[str]:
        """Renew every lease; return the keys that are no longer ours (forgotten here). A key found missing is
        taken again if our lease on it was certainly still running (see RENEW_SCRIPT)."""
        keys = list(self._confirmed)
        if not keys:
            return []
        started = time.monotonic()
        running = ["1" if self._running(key, started) else "0" for key in keys]
        held, error = await self._renew_script(keys, running)
        ended = time.monotonic()
        lost, late = [], []
        self.retaken = []
        for key, outcome in zip(keys, held, strict=True):
            if key not in self._confirmed:
                # Released while the renewal was on its way (a store handed over): the script may have renewed
                # the key, or taken it again after the release's DEL, for a store nobody here serves any more.
                if outcome:
                    late.append(key)
                continue
            if outcome is None:
                continue  # its cluster node did not answer: the lease stands as last confirmed
            if outcome == 2:
                if self._running(key, ended):
                    self.retaken.append(key)
                else:
                    # The script may have run after our lifetime ended, when another process could have taken
                    # and released the key meanwhile: not ours after all.
                    late.append(key)
                    outcome = 0
            if outcome:
                self._confirmed[key] = started
            else:
                lost.append(key)
                self._confirmed.pop(key, None)
        if late:
            # Best effort: a key left behind expires after one ttl, and only delays the next owner that long.
            with contextlib.suppress(Exception):
                await self._release_script(late)
        if error is not None:
            # Part of a cluster unreachable: what the rest answered is recorded above; the caller treats the
            # leases it could not renew in time as lost (renew_all -> expired()).
            raise PartialRenewal(lost) from error
        return lost

    async def _renew_script(
        self, keys: list[str], running: list[str]
    ) -> tuple[list[int | None], BaseException | None]:
        """RENEW_SCRIPT over `keys`: one call on a single Redis, one per hash slot (concurrently) on a cluster,
        where a script's keys must share a slot (the keys of one store bucket do, app/contracts.py). A group
        whose call failed gets None outcomes, and the first error is returned beside them."""
        groups = group_by_slot(self.redis, keys)
        replies: list[Any] = await asyncio.gather(
            *[
                self.redis.eval(
                    RENEW_SCRIPT,
                    len(group),
                    *[keys[i] for i in group],
                    self.token,
                    str(self.ttl_ms),
                    *[running[i] for i in group],
                )
                for group in groups
            ],
            return_exceptions=True,
        )
        held: list[int | None] = [None] * len(keys)
        error: BaseException | None = None
        for group, reply in zip(groups, replies, strict=True):
            if isinstance(reply, BaseException):
                error = error or reply
                continue
            for i, outcome in zip(group, reply, strict=True):
                held[i] = int(outcome)
        if error is not None and len(groups) == 1:
            raise error  # a single Redis (or one slot): nothing was renewed
        return held, error

    async def _release_script(self, keys: list[str]) -> None:
        groups = group_by_slot(self.redis, keys)
        await asyncio.gather(
            *[
                self.redis.eval(RELEASE_SCRIPT, len(group), *[keys[i] for i in group], self.token)
                for group in groups
            ]
        )

    def _running(self, key: str, at: float) -> bool:
        """Our lease on `key` had not expired at monotonic time `at`: it was confirmed less than a ttl before
        (with the margin of `holds`). The confirmation time is taken before the call that set the expiry, so
        Redis's own expiry is no earlier."""
        confirmed = self._confirmed.get(key)
        return confirmed is not None and (at - confirmed) * 1000 < self.ttl_ms * 0.9

    async def renew_all(self, log: FilteringBoundLogger) -> list[uuid.UUID]:
        """Renew every lease; return the stores whose lease is lost (forgotten here), which the caller must drop
        at once."""
        try:
            lost = await self.renew()
            self.reachable = True
        except Exception as exc:
            # Redis unreachable: past the lease's lifetime another process may own the store. (On a cluster,
            # part of it may have answered: the leases it found lost are dropped too.)
            lost = [*(exc.lost if isinstance(exc, PartialRenewal) else []), *self.expired()]
            # The traceback once per outage: renewals are retried every RETRY_SECONDS meanwhile.
            log.warning("lease renewal failed", error=str(exc)[:200], exc_info=self.reachable)
            self.reachable = False
        if self.retaken:
            log.warning("lease keys vanished (Redis lost its data?); taken again", count=len(self.retaken))
            self.retaken = []
        store_ids = []
        for key in lost:
            store_id = lease_store_id(key)
            log.warning("lease lost; dropping the store", store_id=str(store_id))
            self.forget(key)
            store_ids.append(store_id)
        return store_ids

    def renew_interval(self) -> float:
        """Seconds until the next renewal: a quarter of the lifetime, but soon again while Redis is unreachable,
        so that an outage shorter than the lifetime (a Redis restarting) costs no lease."""
        regular = self.ttl_ms / 4000
        return regular if self.reachable else min(regular, RETRY_SECONDS)

    def expired(self) -> list[str]:
        """Leases we could not renew in time (Redis unreachable): treat them as lost."""
        return [key for key in self._confirmed if not self.holds(key)]

    def forget(self, key: str) -> None:
        self._confirmed.pop(key, None)

    async def release(self, *keys: str) -> None:
        for key in keys:
            self._confirmed.pop(key, None)
        if keys:
            await self._release_script(list(keys))


async def heartbeat(redis: Redis, registry_key: str, member: str, *, ttl_seconds: float) -> int:
    """Heartbeat `member` into the registry of live processes; return how many are live. Processes silent for
    a lease's lifetime count as gone."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(registry_key, {member: now})
        pipe.zremrangebyscore(registry_key, "-inf", now - ttl_seconds)
        pipe.zcard(registry_key)
        *_, live = await pipe.execute()
    return max(1, int(live))


async def fair_share(redis: Redis, registry_key: str, member: str, *, wanted: int, ttl_seconds: float) -> int:
    """Heartbeat `member` (see `heartbeat`) and return its share of `wanted` items: ceil(wanted / live)."""
    live = await heartbeat(redis, registry_key, member, ttl_seconds=ttl_seconds)
    return max(1, -(-wanted // live))


async def take_fair_share(
    leases: Leases,
    registry_key: str,
    lease_key: Callable[[uuid.UUID], str],
    *,
    stores: list[uuid.UUID],
    owned: Callable[[], set[uuid.UUID]],
    take: Callable[[uuid.UUID], Awaitable[None]],
    drop: Callable[[uuid.UUID], Awaitable[None]],
) -> None:
    """One review of a leased service's stores (the worker's, the webhook sender's): drop deleted stores, hand
    some over when a replica joined (more owned than this replica's fair share), then lease free stores up to
    the share. `drop` must release the store's lease; `take` starts serving a store just leased."""
    share = await fair_share(
        leases.redis, registry_key, leases.token, wanted=len(stores), ttl_seconds=leases.ttl_ms / 1000
    )
    for store_id in owned() - set(stores):  # deleted stores
        await drop(store_id)
    held = list(owned())
    for store_id in held[: max(0, len(held) - share)]:  # a new replica joined: hand some over
        await drop(store_id)
    for store_id in stores:
        if len(owned()) >= share:
            break
        if store_id not in owned() and await leases.acquire(lease_key(store_id)):
            await take(store_id)
