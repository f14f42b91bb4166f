from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import OnboardingLink, Store, Tenant


class OnboardingLinkRepository:
    """Links of one store of one tenant (`_base()`), and the unscoped lookup by token hash for the link page."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> OnboardingLinkRepository:
        return cls(session)

    def _base(self, tenant_id: uuid.UUID, store_id: uuid.UUID) -> Select[OnboardingLink]:
        return select(OnboardingLink).where(
            OnboardingLink.tenant_id == tenant_id,
            OnboardingLink.store_id == store_id,
            OnboardingLink.revoked_at.is_(None),
        )

    async def create(
        self, *, tenant_id: uuid.UUID, store_id: uuid.UUID, token_hash: str, ttl: timedelta
    ) -> OnboardingLink:
        link = OnboardingLink(
            tenant_id=tenant_id, store_id=store_id, token_hash=token_hash, expires_at=datetime.now(UTC) + ttl
        )
        self.session.add(link)
        await self.session.flush()
        await self.session.refresh(link)
        return link

    async def list_live(self, tenant_id: uuid.UUID, store_id: uuid.UUID) -> list[OnboardingLink]:
        statement = self._base(tenant_id, store_id).where(
            OnboardingLink.expires_at > datetime.now(UTC), OnboardingLink.completed_at.is_(None)
        )
        return list(await self.session.scalars(statement.order_by(OnboardingLink.created_at)))

    async def get(
        self, tenant_id: uuid.UUID, store_id: uuid.UUID, link_id: uuid.UUID
    ) -> OnboardingLink | None:
        return await self.session.scalar(self._base(tenant_id, store_id).where(OnboardingLink.id == link_id))

    async def get_live_by_token_hash(self, token_hash: str) -> tuple[OnboardingLink, Store, Tenant] | None:
        """A link that has not expired nor been revoked, with its store and tenant (completion is the caller's)."""
        statement = (
            select(OnboardingLink, Store, Tenant)
            .join(Store, Store.id == OnboardingLink.store_id)
            .join(Tenant, Tenant.id == OnboardingLink.tenant_id)
            .where(
                OnboardingLink.token_hash == token_hash,
                OnboardingLink.revoked_at.is_(None),
                OnboardingLink.expires_at > datetime.now(UTC),
            )
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def is_expired(self, token_hash: str) -> bool:
        """Whether the token is a real link's that expired (neither revoked nor used): its holder is told so."""
        found = await self.session.scalar(
            select(OnboardingLink.id).where(
                OnboardingLink.token_hash == token_hash,
                OnboardingLink.revoked_at.is_(None),
                OnboardingLink.completed_at.is_(None),
                OnboardingLink.expires_at <= datetime.now(UTC),
            )
        )
        return found is not None

    async def update(self, link: OnboardingLink, **values: object) -> None:
        for column, value in values.items():
            setattr(link, column, value)
        await self.session.flush()
