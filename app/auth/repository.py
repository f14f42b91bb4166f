from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Tenant


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> TenantRepository:
        return cls(session)

    async def get_oldest_by_name(self, name: str) -> Tenant | None:
        # `tenants.name` is not unique: the oldest one wins, so every request agrees on the same tenant.
        statement = select(Tenant).where(Tenant.name == name).order_by(Tenant.created_at, Tenant.id).limit(1)
        return await self.session.scalar(statement)

    async def lock_name(self, name: str) -> None:
        """Serialize creators of a tenant name until the transaction ends (no unique constraint to lean on)."""
        await self.session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"tenant-name:{name}"))))

    async def create(self, *, name: str) -> Tenant:
        tenant = Tenant(name=name)
        self.session.add(tenant)
        await self.session.flush()
        await self.session.refresh(tenant)
        return tenant
