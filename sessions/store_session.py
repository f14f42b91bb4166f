"""One owned store: its connection, its status, its reconnects, and what its events do.

A store session heals itself: a dropped connection schedules its reconnect before anything is written, so a
PostgreSQL or Redis that is away at that moment cannot leave the store unconnected; the status it wants is
remembered and written once they are back. Its collaborators are passed in (`Collaborators`): it knows
nothing of the manager that holds it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis

from app.config import Settings
from app.contracts import (
    pairing_code_event,
    qr_event,
    store_events_channel,
    store_pairing_code_key,
    store_qr_key,
)
from app.kit import metrics
from app.models import StoreStatus
from sessions.drivers.base import (
    Connected,
    Connection,
    Disconnected,
    DriverError,
    Event,
    EventCallback,
    Inbound,
    InboundBatch,
    LoggedOut,
    Paired,
    PairingCode,
    QrCode,
    Receipt,
)
from sessions.inbound import InboundRecorder
from sessions.ratelimit import SendPolicy, StoreRateLimiter
from sessions.receipts import ReceiptRecorder
from sessions.repository import WantedStore
from sessions.status import StatusWriter

log = structlog.get_logger(__name__)

STATUS_RETRY_FIRST = (
    0.2  # seconds before a failed status write is tried again; doubles up to the reconnect cap
)


class LeaseLost(Exception):
    """The store's lease is gone: nothing more may be written for it."""


@dataclass(frozen=True)
class Collaborators:
    """What a store session needs from its owner."""

    settings: Settings  # reconnect backoff
    redis: Redis  # QR and pairing-code events
    connect: Callable[[uuid.UUID, EventCallback], Connection]  # the driver's connection factory
    status: StatusWriter
    inbound: InboundRecorder
    receipts: ReceiptRecorder
    owns: Callable[[uuid.UUID], bool]  # the lease is ours (and certainly not expired)
    drop: Callable[[uuid.UUID], Awaitable[None]]  # this store is finished here: forget it, release its lease


class StoreSession:
    def __init__(self, store: WantedStore, collaborators: Collaborators) -> None:
        self.deps = collaborators
        self.store_id: uuid.UUID = store.id
        self.device_jid = store.device_jid
        self.pairing_phone = store.pairing_phone
        self.status = store.status  # the status wanted (written, or to be written: see _flush_status)
        self._reason: str | None = None
        self.policy = SendPolicy.from_store_settings(store.settings)
        self.limiter = StoreRateLimiter(self.policy)
        self.connection = collaborators.connect(store.id, self.on_event)
        self.connected = asyncio.Event()
        self.closed = False
        self.log = log.bind(store_id=str(store.id))
        # Reconnects: at most one task; a disconnect while it runs asks it for one more round.
        self._attempt = 0
        self._reconnect: asyncio.Task[None] | None = None
        self._reconnect_wanted = False
        self._stop_first = False
        # A connection is up or pairing (its last event said so), or one is being made right now; else since when.
        self._live = False
        self._starting = False
        self._down_since = time.monotonic()
        # Status values wanted but not yet known written (PostgreSQL or Redis was away), and their version.
        self._unwritten: dict[str, object] = {}
        self._dirty = False
        self._version = 0
        self._status_lock = asyncio.Lock()
        self._status_writer: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        # Resuming a device writes nothing until the outcome (connected, or why not): one write per store
        # keeps a cold start of many stores fast.
        if self.device_jid is None:
            await self.set_status(StoreStatus.linking, None)  # announced before the first QR code
        await self._connect()

    async def _connect(self) -> None:
        self._starting = True
        try:
            await self.connection.start(device_jid=self.device_jid)
        except DriverError as exc:
            await self.on_event(Disconnected(str(exc), retryable=exc.retryable))
            return
        finally:
            self._starting = False
            self._down_since = time.monotonic()  # a connect that never reports an outcome is a zombie later
        if self.device_jid is None and self.pairing_phone:
            try:
                await self.on_event(await self.connection.request_pairing_code(self.pairing_phone))
            except DriverError as exc:
                self.log.warning("pairing code request failed", error=str(exc))

    async def pairing_phone_changed(self, phone: str | None) -> None:
        """`POST /pairing-code` while a QR pairing is showing: ask for a code on the same connection."""
        self.pairing_phone = phone
        if phone and self.device_jid is None and not self.closed:
            try:
                await self.on_event(await self.connection.request_pairing_code(phone))
            except DriverError as exc:
                self.log.warning("pairing code request failed", error=str(exc))

    def _close(self) -> None:
        self.closed = True
        self.connected.clear()
        self._live = False
        for task in (self._reconnect, self._status_writer):
            # Not the task running this (a failed reconnect that ends the store): it would cancel the drop.
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def stop(self) -> None:
        """Drop the connection (the device stays linked)."""
        self._close()
        try:
            await self.connection.stop()
        except Exception:
            self.log.warning("stopping the connection failed", exc_info=True)

    async def logout(self, reason: str) -> None:
        self._close()
        try:
            await self.connection.logout()
        except Exception as exc:
            self.log.warning("logout failed on the network; forgetting the device here", error=str(exc))
            reason = f"{reason} (the phone may still list the device: {exc})"
        await self.set_status(StoreStatus.logged_out, reason, device_jid=None, phone_number=None)

    # --- reconnects ----------------------------------------------------------------------------------------
    @property
    def reconnect_pending(self) -> bool:
        return self._reconnect is not None and not self._reconnect.done()

    def is_zombie(self, now: float) -> bool:
        """Held, yet with no connection up, none being made and no reconnect pending, for longer than any
        backoff: whatever lost its reconnect, the store would stay dead until a restart."""
        return (
            not self.closed
            and not self._live
            and not self._starting
            and not self.reconnect_pending
            and now - self._down_since > self.deps.settings.sessions_reconnect_max_seconds
        )

    def revive(self) -> None:
        self.log.warning("store held with no connection and no reconnect pending; reconnecting")
        self._stop_first = True  # whatever the driver still holds for it is stale: a start might be a no-op
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        """Synchronous and without I/O, so that nothing that fails (a status write) can prevent it."""
        self._reconnect_wanted = True
        if not self.reconnect_pending and not self.closed:
            self._reconnect = asyncio.create_task(self._reconnect_rounds())
            self._reconnect.add_done_callback(self._reconnect_ended)

    def _backoff(self) -> float:
        settings = self.deps.settings
        delay = min(
            settings.sessions_reconnect_max_seconds,
            settings.sessions_reconnect_base_seconds * 2.0**self._attempt,
        )
        self._attempt += 1
        return delay * random.uniform(0.5, 1.0)  # jitter: stores that fell together do not return together

    async def _reconnect_rounds(self) -> None:
        # A connect that fails with a DriverError reports Disconnected, which asks for another round (the flag);
        # any other failure asks for one here. Either way the delay grows up to the cap.
        while self._reconnect_wanted and not self.closed:
            self._reconnect_wanted = False
            delay = self._backoff()
            self.log.info("reconnecting", in_seconds=round(delay, 2), attempt=self._attempt)
            await asyncio.sleep(delay)
            if self.closed:
                return
            metrics.RECONNECTS.inc()
            try:
                if self._stop_first:
                    self._stop_first = False
                    await self.connection.stop()
                await self._connect()
            except Exception:
                self.log.warning("reconnect failed; trying again", exc_info=True)
                self._reconnect_wanted = True

    def _reconnect_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # not an Exception (those are retried inside): still, never leave it unseen
            self.log.error("reconnect task failed", exc_info=error)
            if not self.closed:
                self._schedule_reconnect()

    # --- events --------------------------------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        if self.closed and not isinstance(event, Inbound | InboundBatch | Receipt):
            return
        match event:
            case Inbound(message):
                # Raising here keeps the message unacknowledged on the network, which delivers it again.
                self._require_lease()
                await self.deps.inbound.save(self.store_id, message)
            case InboundBatch(messages):
                self._require_lease()
                await self.deps.inbound.save_many(self.store_id, messages)
            case QrCode(code, expires_at) | PairingCode(code, expires_at):
                self._live = True
                is_qr = isinstance(event, QrCode)
                payload = qr_event(code, expires_at) if is_qr else pairing_code_event(code, expires_at)
                key = store_qr_key(self.store_id) if is_qr else store_pairing_code_key(self.store_id)
                ttl_ms = max(1, int((expires_at - _utcnow()).total_seconds() * 1000))
                await self.deps.redis.set(key, payload, px=ttl_ms)
                await self.deps.redis.publish(store_events_channel(self.store_id), payload)
            case Paired(device_jid, phone):
                self._live = True
                self.device_jid = device_jid
                try:
                    await self.deps.redis.delete(
                        store_qr_key(self.store_id), store_pairing_code_key(self.store_id)
                    )
                except Exception:  # they expire with their code
                    self.log.warning("could not delete the used QR code", exc_info=True)
                self.want_status(
                    StoreStatus(self.status), self._reason, device_jid=device_jid, phone_number=phone,
                    pairing_phone=None,
                )  # fmt: skip
            case Connected(phone):
                self._live = True
                self._attempt = 0
                self.connected.set()
                extra = {"phone_number": phone} if phone else {}
                self.want_status(StoreStatus.connected, None, **extra)
            case Disconnected(reason, retryable):
                self._went_down()
                if retryable:
                    self._schedule_reconnect()  # first, and not waiting for the write below
                    self.want_status(StoreStatus.reconnecting, reason)
                else:
                    if self.device_jid is None:
                        reason = f"{reason}; link again to get a new QR code"
                    try:
                        await self.deps.redis.delete(store_qr_key(self.store_id))
                    except Exception:
                        self.log.warning("could not delete the expired QR code", exc_info=True)
                    await self.set_status(StoreStatus.error, reason)
                    await self.deps.drop(self.store_id)
            case LoggedOut(reason):
                self._went_down()
                self.device_jid = None
                await self.set_status(StoreStatus.logged_out, reason, device_jid=None)
                await self.deps.drop(self.store_id)
            case Receipt(_chat, ids, kind):
                await self.deps.receipts.record(self.store_id, ids, kind)

    def _went_down(self) -> None:
        self.connected.clear()
        self._live = False
        self._down_since = time.monotonic()

    # --- status --------------------------------------------------------------------------------------------
    def _require_lease(self) -> None:
        if not self.deps.owns(self.store_id):
            raise LeaseLost(str(self.store_id))

    def want_status(self, status: StoreStatus, reason: str | None, **values: object) -> None:
        """Remember the status and write it in the background, again and again until written (PostgreSQL or
        Redis may be away): the driver's event handler never waits for it, and the latest status wins."""
        self._remember(status, reason, values)
        if self._status_writer is None or self._status_writer.done():
            self._status_writer = asyncio.create_task(self._write_status())

    async def set_status(self, status: StoreStatus, reason: str | None, **values: object) -> None:
        """Remember the status and write it now: before the store is dropped (after which nothing may be
        written for it), or to announce it before what follows. Never raises: if the write fails, the
        background writer tries on while the store is ours."""
        self._remember(status, reason, values)
        if not await self._flush_status() and (self._status_writer is None or self._status_writer.done()):
            self._status_writer = asyncio.create_task(self._write_status())

    def _remember(self, status: StoreStatus, reason: str | None, values: dict[str, object]) -> None:
        self.status, self._reason = status.value, reason
        self._unwritten.update(values)  # with those of earlier statuses not written yet
        self._dirty = True
        self._version += 1
        self.log.info("store status", status=status.value, reason=reason)

    async def _write_status(self) -> None:
        delay, failed = STATUS_RETRY_FIRST, False
        while self._dirty:
            if await self._flush_status():
                if failed and not self._dirty:
                    self.log.info("store status written after a failure", status=self.status)
                continue  # a newer status may have come meanwhile
            failed = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.deps.settings.sessions_reconnect_max_seconds)

    async def _flush_status(self) -> bool:
        """Write the wanted status if it is not written yet; False if that failed."""
        async with self._status_lock:
            if not self._dirty:
                return True
            if not self.deps.owns(self.store_id):
                self._dirty = False  # not ours any more: whoever holds the store writes its own status
                return True
            version, values = self._version, dict(self._unwritten)
            try:
                await self.deps.status.write(self.store_id, StoreStatus(self.status), self._reason, **values)
            except Exception as exc:
                self.log.warning(
                    "writing the store status failed; will retry", status=self.status, error=str(exc)[:200]
                )
                return False
            if version == self._version:  # else a newer status came meanwhile: written next
                self._dirty = False
                self._unwritten.clear()
            return True


def _utcnow() -> datetime:
    return datetime.now(UTC)
