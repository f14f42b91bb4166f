"""Sign-up, login, logout and password change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.csrf import csrf_token
from app.auth.errors import EmailTaken, InvalidCredentials, WrongPassword
from app.auth.passwords import hash_password, verify_password
from app.auth.ratelimit import count_login_attempt
from app.auth.tokens import TokenKind, issue_token
from app.config import Settings
from app.models import Tenant, User, UserRole
from app.tenants.repository import TenantRepository
from app.users.repository import UserRepository


@dataclass(frozen=True)
class IssuedToken:
    token: str
    ttl_seconds: int
    csrf_token: str | None = None


NO_PASSWORD = "!oidc"


async def _new_owner(
    session: AsyncSession, *, email: str, password_hash: str, business_name: str
) -> tuple[User, Tenant]:
    """A new tenant and its owner (sign-up, or a first sign-in through the OpenID Connect provider)."""
    tenant = await TenantRepository.from_session(session).create(name=business_name)
    try:
        user = await UserRepository.from_session(session).create(
            tenant_id=tenant.id,
            email=email,
            password_hash=password_hash,
            role=UserRole.owner.value,
            tokens_valid_after=datetime.now(UTC),
        )
    except IntegrityError as exc:  # the same email signed up concurrently
        raise EmailTaken() from exc
    return user, tenant


class AuthService:
    async def signup(
        self, session: AsyncSession, settings: Settings, *, email: str, password: str, business_name: str
    ) -> tuple[User, IssuedToken]:
        users = UserRepository.from_session(session)
        if await users.get_by_email(email) is not None:
            raise EmailTaken()
        user, tenant = await _new_owner(
            session, email=email, password_hash=await hash_password(password), business_name=business_name
        )
        return user, self.issue(settings, user, tenant, kind=TokenKind.access)

    async def login(
        self, session: AsyncSession, redis: Redis, settings: Settings, *, ip: str, email: str, password: str
    ) -> tuple[User, Tenant]:
        await count_login_attempt(
            redis,
            ip=ip,
            email=email,
            per_ip=settings.login_limit_per_ip,
            per_account=settings.login_limit_per_account,
            window_seconds=settings.login_limit_window_seconds,
        )
        user = await UserRepository.from_session(session).get_by_email(email)
        # An unknown email is checked against a dummy hash: the same answer after the same work.
        if not await verify_password(user.password_hash if user else None, password) or user is None:
            raise InvalidCredentials()
        return user, await TenantRepository.from_session(session).get(user.tenant_id)

    async def sign_in_oidc(
        self, session: AsyncSession, *, email: str, name: str | None
    ) -> tuple[User, Tenant]:
        """The user with this (provider-verified) email; someone new gets a tenant of their own, as at sign-up."""
        users = UserRepository.from_session(session)
        user = await users.get_by_email(email)
        if user is None:
            # Not an argon2 hash: no password matches it, so this account signs in through the provider.
            return await _new_owner(
                session, email=email, password_hash=NO_PASSWORD, business_name=(name or email)[:200]
            )
        return user, await TenantRepository.from_session(session).get(user.tenant_id)

    def issue(self, settings: Settings, user: User, tenant: Tenant, *, kind: TokenKind) -> IssuedToken:
        assert settings.secret_key
        ttl = settings.session_ttl_seconds if kind is TokenKind.session else settings.access_token_ttl_seconds
        token, claims = issue_token(
            settings.secret_key, user_id=user.id, tenant_id=tenant.id, kind=kind, ttl_seconds=ttl
        )
        csrf = csrf_token(settings.secret_key, claims.token_id) if kind is TokenKind.session else None
        return IssuedToken(token=token, ttl_seconds=ttl, csrf_token=csrf)

    async def logout(self, session: AsyncSession, user: User) -> None:
        """End every session of the user: tokens issued until now stop working."""
        await UserRepository.from_session(session).update(user, tokens_valid_after=datetime.now(UTC))

    async def change_password(
        self, session: AsyncSession, settings: Settings, user: User, tenant: Tenant, *, current: str, new: str
    ) -> IssuedToken:
        if not await verify_password(user.password_hash, current):
            raise WrongPassword()
        await UserRepository.from_session(session).update(
            user, password_hash=await hash_password(new), tokens_valid_after=datetime.now(UTC)
        )
        # Every other session ends; this caller keeps going with a fresh token.
        return self.issue(settings, user, tenant, kind=TokenKind.access)


auth = AuthService()
