from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Store


class StoreRepository:
    """Every query on stores, scoped to one tenant by `_base()`: there is no unscoped way in."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    @classmethod
    def for_tenant(cls, session: AsyncSession, tenant_id: uuid.UUID) -> StoreRepository:
        return cls(session, tenant_id)

    def _base(self) -> Select[Store]:
        return select(Store).where(Store.tenant_id == self.tenant_id)

    async def get(self, store_id: uuid.UUID) -> Store | None:
        return await self.session.scalar(self._base().where(Store.id == store_id))

    async def list_page(
        self, *, limit: int, after: tuple[datetime, uuid.UUID] | None, only_store: uuid.UUID | None = None
    ) -> list[Store]:
        """Stores in creation order, keyset-paginated on (created_at, id): stable while stores are added."""
        statement = self._base().order_by(Store.created_at, Store.id).limit(limit)
        if only_store is not None:  # a key limited to one store lists that one only
            statement = statement.where(Store.id == only_store)
        if after is not None:
            statement = statement.where(tuple_(Store.created_at, Store.id) > tuple_(*after))
        return list(await self.session.scalars(statement))

    async def create(self, *, name: str) -> Store:
        store = Store(tenant_id=self.tenant_id, name=name)
        self.session.add(store)
        await self.session.flush()
        # Server-side defaults (timestamps) are not loaded by the INSERT; lazy loads are not allowed in async.
        await self.session.refresh(store)
        return store

    async def update(self, store: Store, **values: Any) -> Store:
        """Write only the given columns: the session manager writes the others (status, phone) concurrently."""
        for column, value in values.items():
            setattr(store, column, value)
        await self.session.flush()
        # Reload: `updated_at` is set by the database, and the manager may have changed the status meanwhile.
        await self.session.refresh(store)
        return store

    async def refresh(self, store: Store) -> Store:
        await self.session.refresh(store)
        return store
