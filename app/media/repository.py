"""Every query of the media API: uploads (tenant-scoped) and the tenant's media settings."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, update

from app.kit.repository import TenantScopedRepository
from app.models import Tenant, Upload


class UploadRepository(TenantScopedRepository[Upload]):
    model = Upload

    def get_readable_statement(self) -> Select[Upload]:
        return self.get_base_statement().where(Upload.tenant_id == self.tenant_id)

    async def get_usable(self, upload_id: uuid.UUID, *, now: datetime) -> Upload | None:
        statement = self.get_readable_statement().where(Upload.id == upload_id, Upload.expires_at > now)
        return await self.get_one_or_none(statement)

    async def set_retention_days(self, days: int | None) -> None:
        await self.session.execute(
            update(Tenant).where(Tenant.id == self.tenant_id).values(media_retention_days=days)
        )
