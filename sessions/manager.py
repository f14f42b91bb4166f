"""The session manager: reconciles stores' desired state (PostgreSQL) with live WhatsApp connections.

Any number of managers run side by side. A store is served by the one holding its lease
(`lease:sessions:store-<id>`); each manager takes at most its fair share of the wanted stores (counted from
the managers' heartbeats), so replicas split the work, and a dead manager's stores are taken over once its
leases expire. A manager that cannot renew a lease drops that store at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import uuid

import structlog
from redis.asyncio import Redis

from app.config import Settings
from app.contracts import STORES_CHANGED_CHANNEL, sessions_lease_key
from app.kit.db import AsyncSessionMaker, transaction
from app.kit.leases import Leases, fair_share
from app.kit.loops import every, forever
from app.models import DesiredState, StoreStatus
from sessions.drivers.base import Driver
from sessions.inbound import InboundRecorder
from sessions.outbound import Outbox
from sessions.repository import SessionsRepository, WantedStore
from sessions.store_session import StoreSession

log = structlog.get_logger(__name__)

MANAGERS_KEY = "managers:sessions"  # sorted set: manager token -> last heartbeat (unix seconds)
SHED_PER_TICK = 5
STARTS_AT_ONCE = 32


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        driver: Driver,
        sessionmaker: AsyncSessionMaker,
        redis: Redis,
        redis_url: str,
    ) -> None:
        self.settings = settings
        self.driver = driver
        self.sessionmaker = sessionmaker
        self.redis = redis
        # The owner token names the host and pid, so an operator can tell which process holds a store.
        owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leases = Leases(redis, ttl_seconds=settings.sessions_lease_ttl_seconds, owner=owner)
        self.sessions: dict[uuid.UUID, StoreSession] = {}
        self.inbound = InboundRecorder(sessionmaker, redis)
        self.outbox = Outbox(
            redis, sessionmaker, new_message_id=driver.new_message_id, session_for=self.sessions.get
        )
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one reconcile at a time
        self.log = log.bind(manager=self.leases.token[:8])

    def owns(self, store_id: uuid.UUID) -> bool:
        return store_id in self.sessions and self.leases.holds(sessions_lease_key(store_id))

    # --- the service ---------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self.driver.start()
        tasks = [
            asyncio.create_task(
                every(self._reconcile_soon, self.settings.sessions_reconcile_seconds, self.log)
            ),
            asyncio.create_task(every(self._renew_leases, self.leases.renew_interval, self.log)),
            asyncio.create_task(self._listen()),
            asyncio.create_task(forever(self.outbox.run, self.log)),
        ]
        self.log.info("session manager started", driver=self.driver.name)
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a loop stuck in a network call must not keep the stores from being handed over.
            await asyncio.wait(tasks, timeout=5)
            await self.shutdown()

    async def shutdown(self) -> None:
        """Hand the stores over quickly: stop every connection, then release the leases at once rather than
        letting them expire."""
        store_ids = list(self.sessions)
        await self.outbox.drain(store_ids)  # the sends in flight end first, while the connections are up
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(self.sessions[s].stop() for s in store_ids), return_exceptions=True), 20
            )
        await self.outbox.close()
        self.inbound.close()
        if store_ids:
            with contextlib.suppress(Exception):
                async with transaction(self.sessionmaker) as session:
                    repository = SessionsRepository(session)
                    for store_id in store_ids:
                        if self.sessions[store_id].status == StoreStatus.connected:
                            await repository.set_status(store_id, StoreStatus.reconnecting, "handing over")
        with contextlib.suppress(Exception):
            await self.leases.release(*[sessions_lease_key(s) for s in store_ids])
            await self.redis.zrem(MANAGERS_KEY, self.leases.token)
            # Wake the other managers now rather than at their next tick.
            await self.redis.publish(STORES_CHANGED_CHANNEL, "handover")
        self.sessions.clear()
        await self.driver.close()
        self.log.info("session manager stopped", released=len(store_ids))

    async def _listen(self) -> None:
        """The API publishes a store id after changing its desired state: reconcile now, not at the next tick."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(STORES_CHANGED_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.warning("store notifications lost; retrying", exc_info=True)
                await asyncio.sleep(1)

    async def _reconcile_soon(self) -> None:
        await self.reconcile()
        # Sleep until the next tick, or less when the API says something changed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.sessions_reconcile_seconds)
        self._wake.clear()

    # --- reconcile -----------------------------------------------------------------------------------------
    async def _fair_share(self, wanted: int) -> int:
        share = await fair_share(
            self.redis,
            MANAGERS_KEY,
            self.leases.token,
            wanted=wanted,
            ttl_seconds=self.settings.sessions_lease_ttl_seconds,
        )
        return min(self.settings.sessions_max_stores, share)

    async def reconcile(self) -> None:
        async with self._lock:
            async with transaction(self.sessionmaker) as session:
                wanted = {store.id: store for store in await SessionsRepository(session).wanted_stores()}
            # Stores we hold that nobody wants connected any more (unlinked, deleted, or handled elsewhere).
            for store_id in [s for s in self.sessions if s not in wanted]:
                await self._release(store_id, unlinked=True)
            handled = set()
            for store_id, store in wanted.items():
                held = self.sessions.get(store_id)
                if held is None:
                    continue
                if store.desired_state == DesiredState.logged_out:
                    await held.logout("logged out on request")
                    await self.drop(store_id)
                    handled.add(store_id)
                elif store.pairing_phone != held.pairing_phone:
                    await held.pairing_phone_changed(store.pairing_phone)
            share = await self._fair_share(len(wanted))
            await self._shed(len(self.sessions) - share)
            candidates = [s for s in wanted.values() if s.id not in self.sessions and s.id not in handled]
            random.shuffle(candidates)  # replicas starting together do not all race for the same stores first
            taking: list[WantedStore] = []
            for store in candidates:
                if store.desired_state == DesiredState.linked and len(self.sessions) + len(taking) >= share:
                    continue
                if await self.leases.acquire(sessions_lease_key(store.id)):
                    taking.append(store)
            # Start several at once: a cold start of many stores is bound by round trips, not by work.
            # (The neonize driver serializes its own connects; the simulator does not need to.)
            limit = asyncio.Semaphore(STARTS_AT_ONCE)

            async def take(store: WantedStore) -> None:
                async with limit:
                    await self._take(store)

            await asyncio.gather(*(take(store) for store in taking))

    async def _shed(self, excess: int) -> None:
        """Hand stores beyond our fair share to the other managers (a new replica joined), a few at a time so
        that a rebalance never drops many connections at once."""
        # Clamped: below our share, `excess` is negative, and a negative slice would shed all but that many.
        for store_id in list(self.sessions)[: max(0, min(excess, SHED_PER_TICK))]:
            self.log.info("handing a store to another manager", store_id=str(store_id))
            await self._release(store_id, unlinked=False)
        if excess > 0:
            await self.redis.publish(STORES_CHANGED_CHANNEL, "rebalance")

    async def _take(self, store: WantedStore) -> None:
        # Read again under the lease: the previous owner may have written since our first read.
        async with transaction(self.sessionmaker) as session:
            fresh = await SessionsRepository(session).get_wanted(store.id)
        if fresh is None:
            await self.leases.release(sessions_lease_key(store.id))
            return
        session_ = StoreSession(self, fresh)
        self.sessions[store.id] = session_
        if fresh.desired_state == DesiredState.logged_out:
            await session_.logout("logged out on request")
            await self.drop(store.id)
            return
        try:
            await self.outbox.own(store.id)
            await session_.start()
        except Exception:
            self.log.exception("starting a store failed", store_id=str(store.id))
            await self.drop(store.id)

    async def _release(self, store_id: uuid.UUID, *, unlinked: bool) -> None:
        session = self.sessions.get(store_id)
        if session is None:
            return
        await self.outbox.drain([store_id])  # on purpose: the sends in flight end first
        await session.stop()
        if unlinked:
            with contextlib.suppress(Exception):
                async with transaction(self.sessionmaker) as db:
                    repository = SessionsRepository(db)
                    if await repository.desired_state(store_id) == DesiredState.unlinked:
                        await repository.set_status(store_id, StoreStatus.unlinked, None)
        await self.drop(store_id)

    async def drop(self, store_id: uuid.UUID) -> None:
        """Forget a store and release its lease (after its connection stopped or ended)."""
        session = self.sessions.pop(store_id, None)
        if session is not None and not session.closed:
            await session.stop()
        self.outbox.disown(store_id)
        try:
            await self.leases.release(sessions_lease_key(store_id))
        except Exception:
            # Forgotten here already; the key expires after one ttl, which only delays the next owner. Raising
            # would abort the reconcile that is taking the other stores (a failed start drops its store here).
            self.log.warning(
                "releasing a lease failed; it will expire", store_id=str(store_id), exc_info=True
            )

    # --- leases --------------------------------------------------------------------------------------------
    async def _renew_leases(self) -> None:
        for store_id in await self.leases.renew_all(self.log):
            session = self.sessions.pop(store_id, None)
            self.outbox.disown(store_id)
            if session is not None:
                await session.stop()
