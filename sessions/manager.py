"""The session manager: reconciles stores' desired state (PostgreSQL) with live WhatsApp connections.

Any number of managers run side by side. A store is served by the one holding its lease
(`lease:sessions:store-<id>`); each manager takes at most its fair share of the wanted stores (counted from
the managers' heartbeats), so replicas split the work, and a dead manager's stores are taken over once its
leases expire. A manager that cannot renew a lease drops that store at once.

What is wanted is read from PostgreSQL: for one store when the API names it on `stores:changed` (at once), for
every store in a full sweep now and then (`sessions_full_reconcile_seconds`, or when a manager hands stores
over). In between, a cheap review (`sessions_reconcile_seconds`, Redis only) notices what needs a store-level
or full reconcile: a manager that joined or left, a known store whose lease nobody holds (its manager died),
a session left with no connection and no reconnect pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Collection

import structlog
from redis.asyncio import Redis

from app.config import Settings
from app.contracts import STORES_CHANGED_CHANNEL, sessions_lease_key
from app.kit import metrics
from app.kit.db import AsyncSessionMaker, transaction
from app.kit.leases import Leases, heartbeat
from app.kit.loops import every, forever
from app.media.storage import create_storage
from app.models import DesiredState, StoreStatus
from sessions.drivers.base import Driver
from sessions.inbound import InboundRecorder
from sessions.media import MediaDownloader
from sessions.outbound import DRAIN_SECONDS, Outbox
from sessions.receipts import ReceiptRecorder
from sessions.repository import SessionsRepository, WantedStore
from sessions.status import StatusWriter
from sessions.store_session import Collaborators, StoreSession

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
        self.storage = create_storage(settings)
        # Inbound media is downloaded after its message is committed, beside its handling (sessions/media.py).
        self.media = MediaDownloader(
            sessionmaker,
            self.storage,
            settings,
            session_for=self.sessions.get,
            owned=lambda: [s for s in self.sessions if self.owns(s)],
        )
        self.inbound = InboundRecorder(sessionmaker, redis, on_media=self.media.saved)
        self.receipts = ReceiptRecorder(sessionmaker)
        self.outbox = Outbox(
            redis,
            sessionmaker,
            new_message_id=driver.new_message_id,
            session_for=self.sessions.get,
            storage=self.storage,
        )
        self._collaborators = Collaborators(
            settings=settings,
            redis=redis,
            connect=driver.connection,
            status=StatusWriter(sessionmaker, redis),
            inbound=self.inbound,
            receipts=self.receipts,
            owns=self.owns,
            drop=self.drop,
        )
        self._wake = asyncio.Event()
        self._full_wanted = False  # a full reconcile is asked for (a handover, a rebalance, a manager joined)
        self._changed: set[uuid.UUID] = set()  # stores named on `stores:changed`, to reconcile one by one
        self._wanted: set[uuid.UUID] = set()  # the wanted stores as the last reconciles found them
        self._live_managers = 0
        self.full_reconciles = 0  # how many full reconciles ended (logs, tests)
        self._lock = asyncio.Lock()  # one reconcile at a time
        self.log = log.bind(manager=self.leases.token[:8])

    def owns(self, store_id: uuid.UUID) -> bool:
        return store_id in self.sessions and self.leases.holds(sessions_lease_key(store_id))

    async def measure(self) -> None:
        """Before a scrape: the held stores by status (metrics, app/kit/metrics.py)."""
        counts = dict.fromkeys(metrics.SESSION_STATUSES, 0)
        for session in self.sessions.values():
            counts[str(session.status)] = counts.get(str(session.status), 0) + 1
        for status, count in counts.items():
            if status in metrics.SESSION_STATUSES:  # a bounded label set, whatever a status may become
                metrics.SESSIONS.labels(status).set(count)

    # --- the service ---------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self.driver.start()
        tasks = [
            asyncio.create_task(forever(self._reconcile_forever, self.log)),
            asyncio.create_task(every(self._review, self.settings.sessions_reconcile_seconds, self.log)),
            asyncio.create_task(every(self._renew_leases, self.leases.renew_interval, self.log)),
            asyncio.create_task(self._listen()),
            asyncio.create_task(forever(self.outbox.run, self.log)),
            asyncio.create_task(forever(self.media.run, self.log)),
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
        letting them expire. The sends in flight and the connections' stops share one bound,
        `shutdown_grace_seconds`."""
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        store_ids = list(self.sessions)
        # The sends in flight end first, while the connections are up.
        await self.outbox.drain(store_ids, min(DRAIN_SECONDS, self.settings.shutdown_grace_seconds))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(self.sessions[s].stop() for s in store_ids), return_exceptions=True),
                max(0.1, deadline - time.monotonic()),
            )
        await self.outbox.close()
        self.inbound.close()
        self.receipts.close()
        self.media.close()
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
        with contextlib.suppress(Exception):
            await self.storage.close()
        self.log.info("session manager stopped", released=len(store_ids))

    async def _listen(self) -> None:
        """The API publishes a store's id after changing it: reconcile that store now. Anything else (`handover`,
        `rebalance`) asks for a full reconcile."""
        subscribed_before, failing = False, False
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(STORES_CHANGED_CHANNEL)
                    if subscribed_before:  # notifications published while we were away are lost
                        self._ask_full()
                    subscribed_before, failing = True, False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._notified(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The traceback once per outage: this is retried every second meanwhile.
                self.log.warning(
                    "store notifications lost; retrying", error=str(exc)[:200], exc_info=not failing
                )
                failing = True
                await asyncio.sleep(1)

    def _notified(self, data: object) -> None:
        try:
            store_id = uuid.UUID(str(data))
        except ValueError:
            self._ask_full()
            return
        self._changed.add(store_id)
        self._wake.set()

    def _ask_full(self) -> None:
        self._full_wanted = True
        self._wake.set()

    async def _reconcile_forever(self) -> None:
        """A full reconcile at once, then every `sessions_full_reconcile_seconds` or when asked; the stores
        named in notifications in between, as they come."""
        next_full = 0.0
        while True:
            self._wake.clear()
            now = time.monotonic()
            full = self._full_wanted or now >= next_full
            # Taken now: notifications that arrive during this reconcile are for the next round. A full
            # reconcile covers the stores named so far.
            changed, self._changed = (set() if full else self._changed), set()
            self._full_wanted = False
            if full:
                next_full = now + self.settings.sessions_full_reconcile_seconds
            try:
                if full or changed:
                    await self.reconcile(None if full else changed)
            except Exception as exc:  # PostgreSQL away, say: the same again in a second
                self.log.warning("reconcile failed; retrying", error=str(exc)[:200])
                self._full_wanted |= full
                self._changed |= changed
                await asyncio.sleep(1)
                continue
            if not (self._full_wanted or self._changed):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - time.monotonic()))

    async def _review(self) -> None:
        """Every `sessions_reconcile_seconds`, without PostgreSQL: heartbeat; ask for a full reconcile when the
        number of live managers changed (shares change), for a store-level one of known stores whose lease
        nobody holds (their manager died) while we are below our share; restart zombie sessions."""
        live = await heartbeat(
            self.redis, MANAGERS_KEY, self.leases.token, ttl_seconds=self.settings.sessions_lease_ttl_seconds
        )
        if live != self._live_managers:
            if self._live_managers:
                self._ask_full()
            self._live_managers = live
        elif len(self.sessions) < await self._fair_share(len(self._wanted)):
            unheld = [s for s in self._wanted if s not in self.sessions]
            if unheld:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for store_id in unheld:
                        pipe.exists(sessions_lease_key(store_id))
                    leased = await pipe.execute()
                orphans = [s for s, held in zip(unheld, leased, strict=True) if not held]
                if orphans:
                    self._changed.update(orphans)
                    self._wake.set()
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if session.is_zombie(now):
                session.revive()

    # --- reconcile -----------------------------------------------------------------------------------------
    async def _fair_share(self, wanted: int) -> int:
        live = await heartbeat(
            self.redis, MANAGERS_KEY, self.leases.token, ttl_seconds=self.settings.sessions_lease_ttl_seconds
        )
        return min(self.settings.sessions_max_stores, max(1, -(-wanted // live)))

    async def reconcile(self, store_ids: Collection[uuid.UUID] | None = None) -> None:
        """Compare desired state with live connections, for every store (a full sweep) or for these only."""
        async with self._lock:
            ids = None if store_ids is None else list(store_ids)
            async with transaction(self.sessionmaker) as session:
                found = await SessionsRepository(session).wanted_stores(ids)
            wanted = {store.id: store for store in found}
            if ids is None:
                self._wanted = set(wanted)
                in_scope = list(self.sessions)
            else:
                self._wanted.difference_update(ids)
                self._wanted.update(wanted)
                in_scope = [s for s in ids if s in self.sessions]
            # Stores we hold that nobody wants connected any more (unlinked, deleted, or handled elsewhere).
            for store_id in [s for s in in_scope if s not in wanted]:
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
                elif held.is_zombie(time.monotonic()):
                    held.revive()
            share = await self._fair_share(len(self._wanted))
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
            if ids is None:
                self.full_reconciles += 1

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
        session_ = StoreSession(fresh, self._collaborators)
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
            await self.outbox.settle(
                store_id
            )  # no read of ours names the outbox once the next owner replays it
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
