"""Webhooks of a store: create (the secret shown once), read, change, delete, rotate the secret, the delivery log,
redeliver one, replay a window. Deliveries themselves run in the worker (workers/webhooks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.contracts import webhook_entry, webhooks_stream
from app.events.repository import horizon
from app.kit.unit_of_work import AfterCommitHook, after_commit
from app.models import DeliveryStatus, Tenant, Webhook
from app.stores.service import store as store_service
from app.webhooks.catalog import SOURCE_KINDS
from app.webhooks.errors import (
    DeliveryNotFound,
    ReplayTooLarge,
    UnsafeWebhookUrl,
    WebhookDisabled,
    WebhookNotFound,
)
from app.webhooks.fanout import fan_out
from app.webhooks.repository import DeliveryRef, DeliveryRepository, FanoutRepository, WebhookRepository
from app.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    ReplayRequest,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from app.webhooks.signing import SecretBox, new_secret
from app.webhooks.urls import UnsafeUrl, check_static, resolve

ROTATION_GRACE = timedelta(hours=24)
REPLAY_PAGE = 1000
REPLAY_MAX_EVENTS = 100_000


def _uuid(value: str, error: Exception) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise error from None


async def check_url(url: str, settings: Settings) -> None:
    """Refuse what can never be delivered to: a bad scheme, a local name or address, or a name that resolves to
    one now. A name that does not resolve yet is accepted (it is checked again at every delivery)."""
    allow = settings.webhooks_allow_private_networks
    try:
        target = check_static(url, allow_private=allow)
        await resolve(target, allow_private=allow)
    except UnsafeUrl as exc:
        raise UnsafeWebhookUrl(url, str(exc)) from exc
    except OSError:
        pass


def _trigger(redis: Redis, refs: list[DeliveryRef]) -> AfterCommitHook:
    """After the commit: one trigger per chain on the store's webhooks stream (the worker drains a chain in order
    from one trigger; a lost one is re-added by its relay)."""

    async def send() -> None:
        chains = {(ref.store_id, ref.webhook_id, ref.order_key): ref for ref in refs}
        async with redis.pipeline(transaction=False) as pipe:
            for ref in chains.values():
                entry = webhook_entry(delivery_id=ref.id, chain=f"{ref.webhook_id}:{ref.order_key}")
                pipe.xadd(webhooks_stream(ref.store_id), entry)  # type: ignore[arg-type]
            await pipe.execute()

    return send


class WebhookService:
    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def get(self, session: AsyncSession, *, tenant: Tenant, store_id: str, webhook_id: str) -> Webhook:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        webhook = await WebhookRepository.for_tenant(session, tenant.id).get(
            store.id, _uuid(webhook_id, WebhookNotFound(webhook_id))
        )
        if webhook is None:
            raise WebhookNotFound(webhook_id)
        return webhook

    async def list(self, session: AsyncSession, *, tenant: Tenant, store_id: str) -> list[WebhookRead]:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        webhooks = await WebhookRepository.for_tenant(session, tenant.id).list_for_store(store.id)
        return [WebhookRead.model_validate(w) for w in webhooks]

    async def create(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, body: WebhookCreate, settings: Settings
    ) -> WebhookCreated:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        await check_url(body.url, settings)
        assert settings.secret_key
        secret = new_secret()
        repository = WebhookRepository.for_tenant(session, tenant.id)
        first = not await repository.list_for_store(store.id)
        webhook = await repository.create(
            Webhook(
                tenant_id=tenant.id,
                store_id=store.id,
                url=body.url.strip(),
                description=body.description,
                secret_encrypted=SecretBox(settings.secret_key).encrypt(secret),
                events=list(body.events),
                enabled=True,
            )
        )
        # The store's fan-out starts at the present (kept if it has a position already).
        await FanoutRepository(session).start_position(store.id, await horizon(session), reset=first)
        return WebhookCreated(**WebhookRead.model_validate(webhook).model_dump(), secret=secret)

    async def update(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        webhook_id: str,
        body: WebhookUpdate,
        settings: Settings,
    ) -> WebhookRead:
        webhook = await self.get(session, tenant=tenant, store_id=store_id, webhook_id=webhook_id)
        changes: dict[str, object] = {}
        if body.url is not None:
            await check_url(body.url, settings)
            changes["url"] = body.url.strip()
        if body.events is not None:
            changes["events"] = list(body.events)
        if "description" in body.model_fields_set:
            changes["description"] = body.description
        if body.enabled is True and not webhook.enabled:
            changes.update(enabled=True, disabled_at=None, disabled_reason=None, failing_since=None)
        elif body.enabled is False and webhook.enabled:
            changes.update(enabled=False, disabled_at=self._now(), disabled_reason="disabled by a user")
        repository = WebhookRepository.for_tenant(session, tenant.id)
        if changes:
            webhook = await repository.update(webhook, update_dict=changes)
        return WebhookRead.model_validate(webhook)

    async def delete(self, session: AsyncSession, *, tenant: Tenant, store_id: str, webhook_id: str) -> None:
        webhook = await self.get(session, tenant=tenant, store_id=store_id, webhook_id=webhook_id)
        await WebhookRepository.for_tenant(session, tenant.id).delete(webhook)

    async def rotate_secret(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, webhook_id: str, settings: Settings
    ) -> SecretRotated:
        webhook = await self.get(session, tenant=tenant, store_id=store_id, webhook_id=webhook_id)
        assert settings.secret_key
        secret = new_secret()
        expires = self._now() + ROTATION_GRACE
        await WebhookRepository.for_tenant(session, tenant.id).update(
            webhook,
            update_dict={
                "secret_encrypted": SecretBox(settings.secret_key).encrypt(secret),
                "previous_secret_encrypted": webhook.secret_encrypted,
                "previous_secret_expires_at": expires,
            },
        )
        return SecretRotated(secret=secret, previous_secret_expires_at=expires)

    async def deliveries(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        webhook_id: str,
        limit: int,
        cursor: str | None,
        status: str | None,
    ) -> DeliveryPage:
        webhook = await self.get(session, tenant=tenant, store_id=store_id, webhook_id=webhook_id)
        rows, next_cursor = await DeliveryRepository.for_tenant(session, tenant.id).list_page(
            webhook.id, limit=limit, cursor=cursor, status=status
        )
        return DeliveryPage(items=[DeliveryRead.model_validate(r) for r in rows], next_cursor=next_cursor)

    async def redeliver(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        webhook_id: str,
        delivery_id: str,
        settings: Settings,
        redis: Redis,
    ) -> DeliveryRead:
        """Send the delivery again (same `webhook-id`), as a new pending attempt with a fresh retry window."""
        webhook = await self.get(session, tenant=tenant, store_id=store_id, webhook_id=webhook_id)
        if not webhook.enabled:
            raise WebhookDisabled(webhook_id)
        repository = DeliveryRepository.for_tenant(session, tenant.id)
        delivery = await repository.get(webhook.id, _uuid(delivery_id, DeliveryNotFound(delivery_id)))
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        now = self._now()
        delivery = await repository.update(
            delivery,
            update_dict={
                "status": DeliveryStatus.pending,
                "next_attempt_at": now,
                "give_up_at": now + timedelta(seconds=settings.webhooks_retry_window_seconds),
                "delivered_at": None,
            },
        )
        ref = DeliveryRef(delivery.id, delivery.store_id, delivery.webhook_id, delivery.order_key)
        after_commit(session, _trigger(redis, [ref]))
        return DeliveryRead.model_validate(delivery)

    async def replay(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        webhook_id: str,
        body: ReplayRequest,
        settings: Settings,
        redis: Redis,
    ) -> int:
        """Every event of the window the webhook subscribes to (or `body.events` of them), queued again in the
        order they happened, behind what is pending; each keeps its `webhook-id`."""
        webhook = await self.get(session, tenant=tenant, store_id=store_id, webhook_id=webhook_id)
        if not webhook.enabled:
            raise WebhookDisabled(webhook_id)
        kinds = [k for k in (body.events or webhook.events) if k in webhook.events]
        repository = FanoutRepository(session)
        now = self._now()
        window = timedelta(seconds=settings.webhooks_retry_window_seconds)
        refs: list[DeliveryRef] = []
        after, read = 0, 0
        while True:
            events = await repository.events_between(
                webhook.store_id, body.since, body.until, SOURCE_KINDS, after=after, limit=REPLAY_PAGE
            )
            if not events:
                break
            read += len(events)
            if read > REPLAY_MAX_EVENTS:
                raise ReplayTooLarge(REPLAY_MAX_EVENTS)
            refs += await fan_out(
                session, events, [webhook], now=now, window=window, kinds=kinds, replay=True
            )
            after = events[-1].id
        if refs:
            after_commit(session, _trigger(redis, refs))
        return len(refs)


webhook = WebhookService()
