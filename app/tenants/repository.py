from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Tenant


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> TenantRepository:
        return cls(session)

    async def get(self, tenant_id: uuid.UUID) -> Tenant:
        """The tenant of a row that refers to it (a foreign key guarantees it exists)."""
        return await self.session.get_one(Tenant, tenant_id)

    async def create(self, *, name: str) -> Tenant:
        tenant = Tenant(name=name)
        self.session.add(tenant)
        await self.session.flush()
        await self.session.refresh(tenant)
        return tenant
