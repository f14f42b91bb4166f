from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.subject import AuthSubject
from app.auth.tokens import hash_link_token, new_link_token
from app.models import OnboardingLink, Store, StoreStatus, Tenant
from app.onboarding.errors import OnboardingLinkNotFound
from app.onboarding.repository import OnboardingLinkRepository
from app.stores.service import store as store_service

_PURPOSE = "onboarding"
TOKEN_MARKER = "onb"


@dataclass(frozen=True)
class OnboardingAccess:
    """What a link's token reaches: one store of one tenant."""

    link: OnboardingLink
    store: Store
    tenant: Tenant

    @property
    def finished(self) -> bool:
        return self.link.completed_at is not None or self.store.status == StoreStatus.connected


class OnboardingService:
    async def create(
        self, session: AsyncSession, secret_key: str, *, subject: AuthSubject, store_id: str, ttl_seconds: int
    ) -> tuple[OnboardingLink, str]:
        store = await store_service.get(session, tenant=subject.tenant, store_id=store_id)
        token = new_link_token(TOKEN_MARKER)
        link = await OnboardingLinkRepository.from_session(session).create(
            tenant_id=subject.tenant.id,
            store_id=store.id,
            token_hash=hash_link_token(secret_key, _PURPOSE, token),
            ttl=timedelta(seconds=ttl_seconds),
        )
        return link, token

    async def list_links(
        self, session: AsyncSession, *, subject: AuthSubject, store_id: str
    ) -> list[OnboardingLink]:
        store = await store_service.get(session, tenant=subject.tenant, store_id=store_id)
        return await OnboardingLinkRepository.from_session(session).list_live(subject.tenant.id, store.id)

    async def revoke(
        self, session: AsyncSession, *, subject: AuthSubject, store_id: str, link_id: str
    ) -> None:
        store = await store_service.get(session, tenant=subject.tenant, store_id=store_id)
        repository = OnboardingLinkRepository.from_session(session)
        try:
            link = await repository.get(subject.tenant.id, store.id, uuid.UUID(link_id))
        except ValueError:
            link = None
        if link is None:
            raise OnboardingLinkNotFound()
        await repository.update(link, revoked_at=datetime.now(UTC))

    async def open(self, session: AsyncSession, secret_key: str, token: str) -> OnboardingAccess:
        """The link's store, or 404 for a guessed, expired or revoked token."""
        repository = OnboardingLinkRepository.from_session(session)
        token_hash = hash_link_token(secret_key, _PURPOSE, token)
        found = await repository.get_live_by_token_hash(token_hash)
        if found is None:
            raise OnboardingLinkNotFound(expired=await repository.is_expired(token_hash))
        access = OnboardingAccess(*found)
        if access.finished and access.link.completed_at is None:
            # Seen connected: dead from now on, even if the store disconnects later.
            await OnboardingLinkRepository.from_session(session).update(
                access.link, completed_at=datetime.now(UTC)
            )
        return access

    def require_unfinished(self, access: OnboardingAccess) -> None:
        """Only the status is left of a link whose store connected."""
        if access.finished:
            raise OnboardingLinkNotFound()


onboarding = OnboardingService()
