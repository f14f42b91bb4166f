from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select

from app.kit.pagination import Keyset
from app.kit.repository import TenantScopedRepository
from app.models import Store

# Creation order: stable while stores are added.
STORE_ORDER = Keyset((Store.created_at, Store.id))


class StoreRepository(TenantScopedRepository[Store]):
    model = Store

    def get_readable_statement(self) -> Select[Store]:
        return self.get_base_statement().where(Store.tenant_id == self.tenant_id)

    async def get(self, store_id: uuid.UUID) -> Store | None:
        return await self.get_one_or_none(self.get_readable_statement().where(Store.id == store_id))

    async def list_page(
        self, *, limit: int, cursor: str | None, only_store: uuid.UUID | None = None
    ) -> tuple[Sequence[Store], str | None]:
        statement = self.get_readable_statement()
        if only_store is not None:  # a key limited to one store lists that one only
            statement = statement.where(Store.id == only_store)
        statement = STORE_ORDER.apply(statement, limit=limit, cursor=cursor)
        return STORE_ORDER.page(
            await self.get_all(statement), limit=limit, key=lambda s: (s.created_at, s.id)
        )

    async def create_store(self, *, name: str) -> Store:
        return await self.create(Store(tenant_id=self.tenant_id, name=name))
