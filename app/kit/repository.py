"""The base of every API repository: the session, the base statement, typed writes.

`RepositoryBase[Model]` is for system-wide tables (tenants). A tenant-owned table's repository derives from
`TenantScopedRepository[Model]`: it is built for one tenant (`for_tenant(session, tenant_id)`), and its
`get_readable_statement()` is the base statement with the tenant filter applied. Every read of such a
repository starts there, so a forgotten tenant filter is impossible rather than unlikely.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Base

ModelT = TypeVar("ModelT", bound=Base)


class _Repository(Generic[ModelT]):
    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def get_base_statement(self) -> Select[ModelT]:
        return select(self.model)

    async def get_one_or_none(self, statement: Select[ModelT]) -> ModelT | None:
        return await self.session.scalar(statement)

    async def get_all(self, statement: Select[ModelT]) -> Sequence[ModelT]:
        return (await self.session.scalars(statement)).all()

    async def create(self, obj: ModelT) -> ModelT:
        self.session.add(obj)
        await self.session.flush()
        # Server-side defaults (timestamps) are not loaded by the INSERT; lazy loads are not allowed in async.
        await self.session.refresh(obj)
        return obj

    async def update(self, obj: ModelT, *, update_dict: Mapping[str, Any]) -> ModelT:
        """Write only the given columns (other processes write the others concurrently), then reload the row:
        `updated_at` is set by the database, and another process may have changed other columns meanwhile."""
        for column, value in update_dict.items():
            if not hasattr(type(obj), column):
                raise AttributeError(f"{type(obj).__name__} has no column {column!r}")
            setattr(obj, column, value)
        await self.session.flush()
        await self.session.refresh(obj)
        return obj

    async def refresh(self, obj: ModelT) -> ModelT:
        await self.session.refresh(obj)
        return obj


class RepositoryBase(_Repository[ModelT]):
    @classmethod
    def from_session(cls, session: AsyncSession) -> Self:
        return cls(session)


class TenantScopedRepository(_Repository[ModelT]):
    """A repository bound to one tenant: there is no unscoped read."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        super().__init__(session)
        self.tenant_id = tenant_id

    @classmethod
    def for_tenant(cls, session: AsyncSession, tenant_id: uuid.UUID) -> Self:
        return cls(session, tenant_id)

    def get_readable_statement(self) -> Select[ModelT]:
        """The base statement restricted to the tenant's rows; every read starts here."""
        raise NotImplementedError
