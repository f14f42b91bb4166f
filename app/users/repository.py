from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Tenant, User


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
