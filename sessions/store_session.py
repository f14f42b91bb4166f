"""One owned store: its connection, its status, its reconnects, and what its events do."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from app.contracts import (
    pairing_code_event,
    qr_event,
    status_event,
    store_events_channel,
    store_pairing_code_key,
    store_qr_key,
)
from app.kit.db import transaction
from app.models import StoreStatus
from sessions.drivers.base import (
    Connected,
    Disconnected,
    DriverError,
    Event,
    Inbound,
    InboundBatch,
    LoggedOut,
    Paired,
    PairingCode,
    QrCode,
    Receipt,
)
from sessions.ratelimit import SendPolicy, StoreRateLimiter
from sessions.repository import SessionsRepository, WantedStore

if TYPE_CHECKING:
    from sessions.manager import SessionManager

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """The store's lease is gone: nothing more may be written for it."""


class StoreSession:
    def __init__(self, manager: SessionManager, store: WantedStore) -> None:
        self.manager = manager
        self.store_id: uuid.UUID = store.id
        self.device_jid = store.device_jid
        self.pairing_phone = store.pairing_phone
        self.status = store.status
        self._reason: str | None = None
        self.policy = SendPolicy.from_store_settings(store.settings)
        self.limiter = StoreRateLimiter(self.policy)
        self.connection = manager.driver.connection(store.id, self.on_event)
        self.connected = asyncio.Event()
        self.closed = False
        self._attempt = 0
        self._reconnect: asyncio.Task[None] | None = None
        self.log = log.bind(store_id=str(store.id))

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        # Resuming a device writes nothing until the outcome (connected, or why not): one write per store
        # keeps a cold start of many stores fast.
        if self.device_jid is None:
            await self.set_status(StoreStatus.linking, None)
        await self._connect()

    async def _connect(self) -> None:
        try:
            await self.connection.start(device_jid=self.device_jid)
        except DriverError as exc:
            await self.on_event(Disconnected(str(exc), retryable=exc.retryable))
            return
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

    async def stop(self) -> None:
        """Drop the connection (the device stays linked)."""
        self.closed = True
        self.connected.clear()
        if self._reconnect is not None:
            self._reconnect.cancel()
        try:
            await self.connection.stop()
        except Exception:
            self.log.warning("stopping the connection failed", exc_info=True)

    async def logout(self, reason: str) -> None:
        self.closed = True
        self.connected.clear()
        if self._reconnect is not None:
            self._reconnect.cancel()
        try:
            await self.connection.logout()
        except Exception as exc:
            self.log.warning("logout failed on the network; forgetting the device here", error=str(exc))
            reason = f"{reason} (the phone may still list the device: {exc})"
        await self.set_status(StoreStatus.logged_out, reason, device_jid=None, phone_number=None)

    def _schedule_reconnect(self) -> None:
        settings = self.manager.settings
        delay = min(
            settings.sessions_reconnect_max_seconds,
            settings.sessions_reconnect_base_seconds * 2**self._attempt,
        )
        delay *= random.uniform(0.5, 1.0)  # jitter: stores that fell together do not return together
        self._attempt += 1
        self.log.info("reconnecting", in_seconds=round(delay, 2), attempt=self._attempt)

        async def later() -> None:
            await asyncio.sleep(delay)
            if not self.closed:
                await self._connect()

        self._reconnect = asyncio.create_task(later())

    # --- events --------------------------------------------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        if self.closed and not isinstance(event, Inbound | InboundBatch | Receipt):
            return
        match event:
            case Inbound(message):
                # Raising here keeps the message unacknowledged on the network, which delivers it again.
                self._require_lease()
                await self.manager.inbound.save(self.store_id, message)
            case InboundBatch(messages):
                self._require_lease()
                await self.manager.inbound.save_many(self.store_id, messages)
            case QrCode(code, expires_at) | PairingCode(code, expires_at):
                is_qr = isinstance(event, QrCode)
                payload = qr_event(code, expires_at) if is_qr else pairing_code_event(code, expires_at)
                key = store_qr_key(self.store_id) if is_qr else store_pairing_code_key(self.store_id)
                ttl_ms = max(1, int((expires_at - _utcnow()).total_seconds() * 1000))
                await self.manager.redis.set(key, payload, px=ttl_ms)
                await self.manager.redis.publish(store_events_channel(self.store_id), payload)
            case Paired(device_jid, phone):
                self.device_jid = device_jid
                await self.manager.redis.delete(
                    store_qr_key(self.store_id), store_pairing_code_key(self.store_id)
                )
                await self._write(device_jid=device_jid, phone_number=phone, pairing_phone=None)
            case Connected(phone):
                self._attempt = 0
                self.connected.set()
                extra = {"phone_number": phone} if phone else {}
                await self.set_status(StoreStatus.connected, None, **extra)
            case Disconnected(reason, retryable):
                self.connected.clear()
                if retryable:
                    await self.set_status(StoreStatus.reconnecting, reason)
                    self._schedule_reconnect()
                else:
                    if self.device_jid is None:
                        reason = f"{reason}; link again to get a new QR code"
                    await self.manager.redis.delete(store_qr_key(self.store_id))
                    await self.set_status(StoreStatus.error, reason)
                    await self.manager.drop(self.store_id)
            case LoggedOut(reason):
                self.connected.clear()
                self.device_jid = None
                await self.set_status(StoreStatus.logged_out, reason, device_jid=None)
                await self.manager.drop(self.store_id)
            case Receipt(_chat, ids, kind):
                async with transaction(self.manager.sessionmaker) as session:
                    await SessionsRepository(session).apply_receipt(self.store_id, ids, kind)

    # --- status --------------------------------------------------------------------------------------------
    def _require_lease(self) -> None:
        if not self.manager.owns(self.store_id):
            raise LeaseLost(str(self.store_id))

    async def _write(self, **values: object) -> None:
        self._require_lease()
        async with transaction(self.manager.sessionmaker) as session:
            await SessionsRepository(session).set_status(
                self.store_id, StoreStatus(self.status), self._reason, **values
            )

    async def set_status(self, status: StoreStatus, reason: str | None, **values: object) -> None:
        self._require_lease()
        async with transaction(self.manager.sessionmaker) as session:
            phone = await SessionsRepository(session).set_status(self.store_id, status, reason, **values)
        self.status, self._reason = status.value, reason
        self.log.info("store status", status=status.value, reason=reason)
        payload = status_event(status.value, phone_number=phone, reason=reason)
        await self.manager.redis.publish(store_events_channel(self.store_id), payload)


def _utcnow() -> datetime:
    return datetime.now(UTC)
