from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.passwords import hash_password
from app.auth.subject import AuthSubject
from app.auth.tokens import hash_link_token, new_link_token
from app.models import Invite, Tenant, User
from app.tenants.repository import TenantRepository
from app.users.errors import AlreadyMember, InviteNotFound
from app.users.invites import InviteRepository
from app.users.repository import UserRepository

INVITE_TTL = timedelta(days=7)
_PURPOSE = "invite"


class UserService:
    async def invite(
        self, session: AsyncSession, secret_key: str, *, subject: AuthSubject, email: str, role: str
    ) -> tuple[Invite, str]:
        """A new invite and its token (shown this once to the inviter, who hands the link over)."""
        if await UserRepository.from_session(session).get_by_email(email) is not None:
            raise AlreadyMember()
        token = new_link_token("inv")
        invite = await InviteRepository.for_tenant(session, subject.tenant.id).create(
            email=email,
            role=role,
            token_hash=hash_link_token(secret_key, _PURPOSE, token),
            ttl=INVITE_TTL,
            invited_by_id=subject.user.id if subject.user else None,
        )
        return invite, token

    async def list_invites(self, session: AsyncSession, *, subject: AuthSubject) -> list[Invite]:
        return await InviteRepository.for_tenant(session, subject.tenant.id).list_pending()

    async def revoke_invite(self, session: AsyncSession, *, subject: AuthSubject, invite_id: str) -> None:
        repository = InviteRepository.for_tenant(session, subject.tenant.id)
        try:
            invite = await repository.get(uuid.UUID(invite_id))
        except ValueError:
            invite = None
        if invite is None:
            raise InviteNotFound()
        await repository.revoke(invite)

    async def accept_invite(
        self, session: AsyncSession, secret_key: str, *, token: str, password: str
    ) -> tuple[User, Tenant]:
        invite = await InviteRepository.for_acceptance(session).take(
            hash_link_token(secret_key, _PURPOSE, token)
        )
        if invite is None:
            raise InviteNotFound()
        try:
            user = await UserRepository.from_session(session).create(
                tenant_id=invite.tenant_id,
                email=invite.email,
                password_hash=await hash_password(password),
                role=invite.role,
                tokens_valid_after=datetime.now(UTC),
            )
        except IntegrityError as exc:  # the email signed up elsewhere since the invite was made
            raise AlreadyMember() from exc
        return user, await TenantRepository.from_session(session).get(user.tenant_id)


user = UserService()
