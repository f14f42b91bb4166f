from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, Tenant


class ApiKeyRepository:
    """Queries on API keys. Everything a tenant reads goes through `_base()` (its live keys only)."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
        self.session = session
        self.tenant_id = tenant_id

    @classmethod
    def for_tenant(cls, session: AsyncSession, tenant_id: uuid.UUID) -> ApiKeyRepository:
        return cls(session, tenant_id)

    @classmethod
    def for_authentication(cls, session: AsyncSession) -> ApiKeyRepository:
        """Unscoped, for `get_by_prefix` only: the caller's tenant is what the key tells."""
        return cls(session, None)

    def _base(self) -> Select[ApiKey]:
        assert self.tenant_id is not None
        return select(ApiKey).where(ApiKey.tenant_id == self.tenant_id, ApiKey.revoked_at.is_(None))

    async def get_by_prefix(self, prefix: str) -> tuple[ApiKey, Tenant] | None:
        statement = select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id)
        row = (await self.session.execute(statement.where(ApiKey.prefix == prefix))).one_or_none()
        return None if row is None else (row[0], row[1])

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        return await self.session.scalar(self._base().where(ApiKey.id == key_id))

    async def list_live(self) -> list[ApiKey]:
        return list(await self.session.scalars(self._base().order_by(ApiKey.created_at, ApiKey.id)))

    async def create(
        self, *, name: str, prefix: str, key_hash: str, scopes: list[str], store_id: uuid.UUID | None
    ) -> ApiKey:
        assert self.tenant_id is not None
        key = ApiKey(
            tenant_id=self.tenant_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            scopes=scopes,
            store_id=store_id,
        )
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)
        return key

    async def revoke(self, key: ApiKey, *, at: datetime) -> None:
        key.revoked_at = at
        await self.session.flush()

    async def touch(self, key_id: uuid.UUID, *, now: datetime, resolution: timedelta) -> None:
        """Record a use, unless one was recorded less than `resolution` ago (no write per request)."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - resolution),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
