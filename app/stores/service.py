"""Stores: create and list them, ask the session manager to link or log out, and relay what it reports.

The API never holds a WhatsApp connection. It writes the desired state and, once the request's transaction is
committed (an after-commit hook), publishes the store id on `STORES_CHANGED_CHANNEL`; the session manager
reconciles and reports back through Redis (status events, the current QR code, a requested pairing code),
which the routes here read or relay. The API creates no stream: each stream's owner (the session manager, the
worker) creates its streams and consumer groups when it takes a store.
"""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import segno
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import (
    STORES_CHANGED_CHANNEL,
    parse_event,
    status_event,
    store_events_channel,
    store_pairing_code_key,
    store_qr_key,
)
from app.kit import unit_of_work
from app.kit.errors import ServiceUnavailable
from app.models import DesiredState, Store, StoreStatus, Tenant
from app.stores.errors import (
    PairingCodeTimeout,
    QrNotAvailable,
    StoreAlreadyConnected,
    StoreNotFound,
)
from app.stores.repository import StoreRepository
from app.stores.schemas import PairingCodeRead, QrCodeRead, QrFormat
from app.stores.settings import StoreSettingsUpdate

log = structlog.get_logger(__name__)

# How long `POST /pairing-code` waits for the session manager to obtain a code from WhatsApp, and how often
# it looks. Module-level so that tests can shorten the wait.
PAIRING_CODE_TIMEOUT_SECONDS = 15.0
PAIRING_CODE_POLL_SECONDS = 0.1
# Redis answers a SUBSCRIBE at once; waiting longer means Redis is in trouble.
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
QR_IMAGE_SCALE = 6
QR_IMAGE_BORDER = 2


@dataclass(frozen=True)
class StoreEvent:
    """One event for a store's event stream: `type` is qr | status | pairing_code, `data` its JSON payload."""

    type: str
    data: str


class StoreEventStream:
    """A store's events: the initial state, then everything the session manager publishes.

    The subscription is confirmed by Redis before the initial state is read, so an event published in
    between is relayed (at worst a repeat of the initial state), never lost.
    """

    def __init__(self, pubsub: PubSub, initial: list[StoreEvent]) -> None:
        self._pubsub = pubsub
        self._initial = initial
        self._closed = False

    async def events(self) -> AsyncIterator[StoreEvent]:
        try:
            for event in self._initial:
                yield event
            async for message in self._pubsub.listen():
                if message.get("type") != "message":
                    continue
                relayed = _relayable(message["data"])
                if relayed is not None:
                    yield relayed
        except RedisError:
            # End the stream cleanly: an EventSource reconnects by itself and gets the current state again.
            log.warning("store events subscription lost", exc_info=True)
        finally:
            await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pubsub.aclose()


def _text(value: bytes | str) -> str:
    # The API's client decodes responses; redis-py's types cannot know that.
    return value.decode() if isinstance(value, bytes) else value


def _relayable(raw: bytes | str) -> StoreEvent | None:
    raw = _text(raw)
    try:
        payload = parse_event(raw)
        kind = payload["type"]
    except (ValueError, TypeError, KeyError):
        log.warning("malformed store event dropped", payload=raw[:200])
        return None
    return StoreEvent(type=str(kind), data=raw)


def _retry_values(store: Store) -> dict[str, object]:
    """The session manager leaves a store in `error` or `logged_out` alone until it is asked again: a new link
    resets the status so that the manager starts over (a fresh pairing after a logout)."""
    if store.status in (StoreStatus.error, StoreStatus.logged_out):
        return {"status": StoreStatus.unlinked.value, "status_reason": None}
    return {}


def render_qr(code: str, kind: QrFormat) -> bytes:
    """The QR code as an SVG or PNG image, sized for a phone camera on a laptop screen."""
    buffer = io.BytesIO()
    segno.make_qr(code).save(buffer, kind=kind.value, scale=QR_IMAGE_SCALE, border=QR_IMAGE_BORDER)
    return buffer.getvalue()


def _parse_store_id(store_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(store_id)
    except ValueError as exc:
        raise StoreNotFound(store_id) from exc


class StoreService:
    async def create(self, session: AsyncSession, *, tenant: Tenant, name: str) -> Store:
        return await StoreRepository.for_tenant(session, tenant.id).create_store(name=name)

    async def list_page(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        limit: int,
        cursor: str | None,
        only_store: uuid.UUID | None = None,
    ) -> tuple[Sequence[Store], str | None]:
        return await StoreRepository.for_tenant(session, tenant.id).list_page(
            limit=limit, cursor=cursor, only_store=only_store
        )

    async def get(self, session: AsyncSession, *, tenant: Tenant, store_id: str) -> Store:
        store = await StoreRepository.for_tenant(session, tenant.id).get(_parse_store_id(store_id))
        if store is None:
            raise StoreNotFound(store_id)
        return store

    async def update_settings(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, settings: StoreSettingsUpdate
    ) -> Store:
        """Replace the given settings groups; the others keep their value."""
        store = await self.get(session, tenant=tenant, store_id=store_id)
        groups = settings.model_dump(mode="json", exclude_unset=True)
        return await StoreRepository.for_tenant(session, tenant.id).update(
            store, update_dict={"settings": {**store.settings, **groups}}
        )

    async def link(self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str) -> Store:
        """Ask for a connection, paired by QR code (a pending pairing-code request is dropped)."""
        store = await self.get(session, tenant=tenant, store_id=store_id)
        retry = _retry_values(store)
        if store.desired_state != DesiredState.linked or store.pairing_phone is not None or retry:
            store = await StoreRepository.for_tenant(session, tenant.id).update(
                store,
                update_dict={"desired_state": DesiredState.linked.value, "pairing_phone": None, **retry},
            )
        _notify_after_commit(session, redis, store)
        return store

    async def logout(self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str) -> Store:
        store = await self.get(session, tenant=tenant, store_id=store_id)
        if store.desired_state != DesiredState.logged_out:
            store = await StoreRepository.for_tenant(session, tenant.id).update(
                store, update_dict={"desired_state": DesiredState.logged_out.value}
            )
        _notify_after_commit(session, redis, store)
        return store

    async def get_qr(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str
    ) -> QrCodeRead:
        store = await self.get(session, tenant=tenant, store_id=store_id)
        raw = await redis.get(store_qr_key(store.id))
        # A connected store needs no QR code, even if a last one has not expired yet.
        if store.status == StoreStatus.connected:
            raise QrNotAvailable(
                f"the store is already connected as {store.phone_number}: no QR code is needed",
                details=_link_state(store),
            )
        if raw is None:
            raise QrNotAvailable(_why_no_qr(store), details=_link_state(store))
        payload = parse_event(raw)
        return QrCodeRead(code=payload["code"], expires_at=payload["expires_at"])

    async def request_pairing_code(
        self,
        session: AsyncSession,
        redis: Redis,
        *,
        tenant: Tenant,
        store_id: str,
        phone: str,
        timeout: float | None = None,
    ) -> PairingCodeRead:
        """Link by phone number: the session manager asks WhatsApp for a code the owner types on the phone."""
        timeout = PAIRING_CODE_TIMEOUT_SECONDS if timeout is None else timeout
        store = await self.get(session, tenant=tenant, store_id=store_id)
        if store.status == StoreStatus.connected:
            raise StoreAlreadyConnected(
                f"the store is already connected as {store.phone_number}; "
                f"POST /v1/stores/{store.id}/logout first to link another number"
            )
        if (
            store.pairing_phone == phone
            and store.desired_state == DesiredState.linked
            and not _retry_values(store)
        ):
            # The same number again (a retry, a double click): the session manager asks WhatsApp only when the
            # number changes, so the code it got for this number is the answer while it lasts.
            raw = await redis.get(store_pairing_code_key(store.id))
            if raw is not None:
                payload = parse_event(raw)
                return PairingCodeRead(code=payload["code"], expires_at=payload["expires_at"])
        # A code left from an earlier request must not be mistaken for the answer to this one.
        await redis.delete(store_pairing_code_key(store.id))
        store = await StoreRepository.for_tenant(session, tenant.id).update(
            store,
            update_dict={
                "desired_state": DesiredState.linked.value,
                "pairing_phone": phone,
                **_retry_values(store),
            },
        )
        _notify_after_commit(session, redis, store)
        # Commit now, not at the end of the request: the session manager, notified by the hook, reads the
        # committed row and only then asks WhatsApp for the code this request waits for.
        await unit_of_work.commit(session)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = await redis.get(store_pairing_code_key(store.id))
            if raw is not None:
                payload = parse_event(raw)
                return PairingCodeRead(code=payload["code"], expires_at=payload["expires_at"])
            if loop.time() >= deadline:
                break
            await asyncio.sleep(PAIRING_CODE_POLL_SECONDS)
        # The status tells the caller why (manager down, WhatsApp unreachable, ...).
        store = await StoreRepository.for_tenant(session, tenant.id).refresh(store)
        raise PairingCodeTimeout(
            f"no pairing code within {timeout:g} s: the session manager did not get one from WhatsApp "
            f"(store status: {store.status}); retry, or watch GET /v1/stores/{store.id}/events",
            details={"timeout_seconds": timeout, **_link_state(store)},
        )

    async def open_events(
        self, session: AsyncSession, redis: Redis, *, tenant: Tenant, store_id: str
    ) -> StoreEventStream:
        """Subscribe to the store's events, then read its current state (in that order, see StoreEventStream)."""
        store = await self.get(session, tenant=tenant, store_id=store_id)
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(store_events_channel(store.id))
            # SUBSCRIBE is sent without waiting for its reply; only the reply proves Redis registered it.
            try:
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                    while True:
                        message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_SECONDS)
                        if message is not None and message["type"] == "subscribe":
                            break
            except TimeoutError as exc:
                raise ServiceUnavailable("Redis did not confirm the event subscription") from exc
            # Read after the subscription is confirmed. No commit needed to free the database connection for
            # the hours the stream may stay open: the request's transaction ends when the endpoint returns,
            # before the response streams (app/dependencies.py: get_session).
            store = await StoreRepository.for_tenant(session, tenant.id).refresh(store)
            initial = [
                StoreEvent(
                    "status",
                    status_event(store.status, phone_number=store.phone_number, reason=store.status_reason),
                )
            ]
            qr = await redis.get(store_qr_key(store.id))
            if qr is not None and store.status != StoreStatus.connected:
                initial.append(StoreEvent("qr", _text(qr)))
        except BaseException:
            await pubsub.aclose()
            raise
        return StoreEventStream(pubsub, initial)


def _notify_after_commit(session: AsyncSession, redis: Redis, store: Store) -> None:
    """Tell the session manager to reconcile the store once the change is committed: notified earlier, it
    could read the row before the change and settle on the old desired state."""
    unit_of_work.after_commit(
        session, functools.partial(redis.publish, STORES_CHANGED_CHANNEL, str(store.id))
    )


def _link_state(store: Store) -> dict[str, str | None]:
    return {
        "status": store.status,
        "desired_state": store.desired_state,
        "status_reason": store.status_reason,
    }


def _why_no_qr(store: Store) -> str:
    if store.desired_state != DesiredState.linked:
        return f"the store is not linking: POST /v1/stores/{store.id}/link first"
    if store.pairing_phone is not None:
        return (
            "the store is linking with a pairing code, not a QR code: "
            f"POST /v1/stores/{store.id}/link to switch to a QR code"
        )
    if store.status == StoreStatus.linking:
        return (
            "the last QR code expired; a new one comes shortly "
            f"(GET /v1/stores/{store.id}/events pushes it as soon as it is ready)"
        )
    reason = f": {store.status_reason}" if store.status_reason else ""
    return (
        f"no QR code yet (store status: {store.status}{reason}); the session manager shows one shortly, "
        f"or POST /v1/stores/{store.id}/link again if linking stopped"
    )


store = StoreService()
