from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import MissingScope
from app.auth.passwords import hash_password
from app.auth.scopes import ROLE_SCOPES, Scope
from app.auth.subject import AuthSubject
from app.auth.tokens import hash_link_token, new_link_token
from app.models import Invite, Tenant, User, UserRole
from app.tenants.repository import TenantRepository
from app.users.errors import AlreadyMember, InviteNotFound, LastOwner, MemberNotFound, OwnersOnly, OwnSelf
from app.users.invites import InviteRepository
from app.users.repository import MemberRepository, UserRepository

INVITE_TTL = timedelta(days=7)
_PURPOSE = "invite"
# Higher ranks hold every right of the lower ones; a move down ends the user's sessions.
_RANK = {UserRole.viewer: 0, UserRole.admin: 1, UserRole.owner: 2}


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

    async def list_members(
        self, session: AsyncSession, *, subject: AuthSubject, limit: int, cursor: str | None
    ) -> tuple[Sequence[User], str | None]:
        return await MemberRepository.for_tenant(session, subject.tenant.id).list_page(
            limit=limit, cursor=cursor
        )

    async def change_role(
        self, session: AsyncSession, *, subject: AuthSubject, user_id: uuid.UUID, role: UserRole
    ) -> User:
        repository = MemberRepository.for_tenant(session, subject.tenant.id)
        target, owners = await self._checked_target(
            repository, subject, user_id, owner_involved=role is UserRole.owner
        )
        old = UserRole(target.role)
        if old is UserRole.owner and role is not UserRole.owner and owners <= 1:
            raise LastOwner()
        if subject.user is not None and target.id == subject.user.id:
            raise OwnSelf()
        if role is old:
            return target
        values: dict[str, object] = {"role": role.value}
        if _RANK[role] < _RANK[old]:
            # Rights come from the role on every request, so they drop at once anyway; ending the sessions
            # also makes an open page sign in again and show what the new role may do.
            values["tokens_valid_after"] = datetime.now(UTC)
        return await repository.update(target, update_dict=values)

    async def remove_member(self, session: AsyncSession, *, subject: AuthSubject, user_id: uuid.UUID) -> None:
        repository = MemberRepository.for_tenant(session, subject.tenant.id)
        target, owners = await self._checked_target(repository, subject, user_id, owner_involved=False)
        if target.role == UserRole.owner.value and owners <= 1:
            raise LastOwner()
        if subject.user is not None and target.id == subject.user.id:
            raise OwnSelf()
        # The row goes: every token of the user is refused from the next request on (no user, no subject).
        await repository.delete(target)

    async def _checked_target(
        self, repository: MemberRepository, subject: AuthSubject, user_id: uuid.UUID, *, owner_involved: bool
    ) -> tuple[User, int]:
        """The target, locked with the tenant's owners and the caller, and how many owners there are.

        The caller's role is read again under the lock: a caller demoted or removed since its request was
        authenticated acts with what it holds now."""
        assert subject.user is not None
        locked = await repository.lock_for_change(user_id, subject.user.id)
        target = locked.get(user_id)
        if target is None:
            raise MemberNotFound(user_id)
        caller = locked.get(subject.user.id)
        caller_role = UserRole(caller.role) if caller is not None else None
        if caller_role is None or Scope.members_write not in ROLE_SCOPES[caller_role]:
            raise MissingScope({Scope.members_write})
        if caller_role is not UserRole.owner and (owner_involved or target.role == UserRole.owner.value):
            raise OwnersOnly()
        owners = sum(1 for u in locked.values() if u.role == UserRole.owner.value)
        return target, owners


user = UserService()
