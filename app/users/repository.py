from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import Keyset
from app.kit.repository import TenantScopedRepository
from app.models import Tenant, User, UserRole


class UserRepository:
    """Users are looked up across tenants only by what identifies one (id, email) when signing in."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> UserRepository:
        return cls(session)

    async def get_with_tenant(self, user_id: uuid.UUID) -> tuple[User, Tenant] | None:
        statement = select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == user_id)
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))

    async def create(
        self, *, tenant_id: uuid.UUID, email: str, password_hash: str, role: str, tokens_valid_after: datetime
    ) -> User:
        user = User(
            tenant_id=tenant_id,
            email=email,
            password_hash=password_hash,
            role=role,
            tokens_valid_after=tokens_valid_after,
        )
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def update(self, user: User, **values: object) -> User:
        for column, value in values.items():
            setattr(user, column, value)
        await self.session.flush()
        return user


# Join order: stable while people join.
MEMBER_ORDER = Keyset((User.created_at, User.id))


class MemberRepository(TenantScopedRepository[User]):
    """The users of one tenant, as its members: listed, re-roled, removed. Every read is tenant-scoped."""

    model = User

    def get_readable_statement(self) -> Select[User]:
        return self.get_base_statement().where(User.tenant_id == self.tenant_id)

    async def list_page(self, *, limit: int, cursor: str | None) -> tuple[Sequence[User], str | None]:
        statement = MEMBER_ORDER.apply(self.get_readable_statement(), limit=limit, cursor=cursor)
        return MEMBER_ORDER.page(
            await self.get_all(statement), limit=limit, key=lambda u: (u.created_at, u.id)
        )

    async def lock_for_change(self, *ids: uuid.UUID) -> dict[uuid.UUID, User]:
        """The tenant's owners and the given members, locked (FOR UPDATE, in id order, so two changes never
        deadlock) and re-read: two owners demoting each other at once are serialized, and the second sees
        that only one owner is left. The map holds every locked row by id."""
        statement = (
            self.get_readable_statement()
            .where(or_(User.role == UserRole.owner.value, User.id.in_(ids)))
            .order_by(User.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {user.id: user for user in await self.get_all(statement)}

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()
