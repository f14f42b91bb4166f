"""Invites: a single-use link, shown to the inviter, that lets one person join the tenant with a role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Invite


class InviteRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
        self.session = session
        self.tenant_id = tenant_id

    @classmethod
    def for_tenant(cls, session: AsyncSession, tenant_id: uuid.UUID) -> InviteRepository:
        return cls(session, tenant_id)

    @classmethod
    def for_acceptance(cls, session: AsyncSession) -> InviteRepository:
        """Unscoped, for `take` only: the invitee has no tenant yet; the token tells which."""
        return cls(session, None)

    def _base(self) -> Select[Invite]:
        assert self.tenant_id is not None
        return select(Invite).where(
            Invite.tenant_id == self.tenant_id, Invite.accepted_at.is_(None), Invite.revoked_at.is_(None)
        )

    async def create(
        self, *, email: str, role: str, token_hash: str, ttl: timedelta, invited_by_id: uuid.UUID | None
    ) -> Invite:
        assert self.tenant_id is not None
        invite = Invite(
            tenant_id=self.tenant_id,
            email=email,
            role=role,
            token_hash=token_hash,
            expires_at=datetime.now(UTC) + ttl,
            invited_by_id=invited_by_id,
        )
        self.session.add(invite)
        await self.session.flush()
        await self.session.refresh(invite)
        return invite

    async def list_pending(self) -> list[Invite]:
        statement = self._base().where(Invite.expires_at > datetime.now(UTC)).order_by(Invite.created_at)
        return list(await self.session.scalars(statement))

    async def get(self, invite_id: uuid.UUID) -> Invite | None:
        return await self.session.scalar(self._base().where(Invite.id == invite_id))

    async def revoke(self, invite: Invite) -> None:
        invite.revoked_at = datetime.now(UTC)
        await self.session.flush()

    async def take(self, token_hash: str) -> Invite | None:
        """Mark the invite used, if it is live: one statement, so two concurrent accepts cannot both win."""
        now = datetime.now(UTC)
        statement = (
            update(Invite)
            .where(
                Invite.token_hash == token_hash,
                Invite.accepted_at.is_(None),
                Invite.revoked_at.is_(None),
                Invite.expires_at > now,
            )
            .values(accepted_at=now)
            .returning(Invite)
        )
        return await self.session.scalar(statement)
