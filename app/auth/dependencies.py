"""Authentication and authorization of every request, declared per route.

`Authenticator(required_scopes=...)` is a dependency: it finds the caller (bearer JWT, API key, or the page's
session cookie), refuses what the caller may not do, and returns an `AuthSubject`. Each domain names its
aliases in its `auth.py` (`StoresRead = Annotated[AuthSubject, Depends(Authenticator(...))]`), so a route's
access reads off its signature.

Answers: 401 without valid credentials; 403 for a missing scope or a cookie write without its CSRF token; 404
(the store's own "not found") for a store a store-limited key may not see — never a 403 that would tell it
exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.keys import key_matches, looks_like_key, parse_key
from app.api_keys.repository import ApiKeyRepository
from app.auth.csrf import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, csrf_matches
from app.auth.errors import CsrfFailed, MissingScope, NotAuthenticated, StoreLimited, UsersOnly
from app.auth.scopes import KEY_SCOPES, ROLE_SCOPES, Scope
from app.auth.subject import AuthSubject
from app.auth.tokens import TokenKind, read_token
from app.config import Settings
from app.dependencies import SessionDep, SettingsDep
from app.models import UserRole
from app.stores.errors import StoreNotFound
from app.users.repository import UserRepository

# The Authenticator takes them as `Security` dependencies, so that every authenticated route declares them in
# the OpenAPI document (the "Authorize" button, and fuzzers' auth checks); they do not raise, it does.
_bearer = HTTPBearer(auto_error=False, description="An access token from /v1/auth/login, or an API key.")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="The web page's session cookie.")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
SessionCookie = Annotated[str | None, Security(_cookie)]


async def authenticate(
    session: AsyncSession,
    settings: Settings,
    authorization: HTTPAuthorizationCredentials | None,
    cookie: str | None,
) -> AuthSubject:
    secret = _secret(settings)
    if authorization is not None:
        return await _from_bearer(session, settings, secret, authorization)
    if cookie:
        return await _from_token(session, secret, cookie, kind=TokenKind.session)
    raise NotAuthenticated("credentials required: an `Authorization: Bearer` token or API key")


async def _from_bearer(
    session: AsyncSession, settings: Settings, secret: str, authorization: HTTPAuthorizationCredentials
) -> AuthSubject:
    credential = authorization.credentials
    if looks_like_key(credential):
        return await _from_api_key(session, settings, secret, credential)
    return await _from_token(session, secret, credential, kind=TokenKind.access)


async def _from_token(session: AsyncSession, secret: str, token: str, *, kind: TokenKind) -> AuthSubject:
    claims = read_token(secret, token, kind=kind)
    if claims is None:
        raise NotAuthenticated()
    found = await UserRepository.from_session(session).get_with_tenant(claims.user_id)
    if found is None:
        raise NotAuthenticated()
    user, tenant = found
    # Logout and password changes move `tokens_valid_after`: every token issued before is dead at once.
    if user.tenant_id != claims.tenant_id or claims.issued_at < user.tokens_valid_after.timestamp():
        raise NotAuthenticated()
    return AuthSubject(
        tenant=tenant,
        scopes=ROLE_SCOPES[UserRole(user.role)],
        user=user,
        by_cookie=kind is TokenKind.session,
        token_id=claims.token_id,
    )


async def _from_api_key(
    session: AsyncSession, settings: Settings, secret: str, credential: str
) -> AuthSubject:
    parsed = parse_key(credential)
    if parsed is None:
        raise NotAuthenticated()
    repository = ApiKeyRepository.for_authentication(session)
    found = await repository.get_by_prefix(parsed.prefix)
    if found is None:
        raise NotAuthenticated()
    key, tenant = found
    now = datetime.now(UTC)
    if (
        not key_matches(secret, parsed.whole, key.key_hash)
        or key.revoked_at is not None
        or (key.expires_at is not None and key.expires_at <= now)
    ):
        raise NotAuthenticated()
    await repository.touch(
        key.id, now=now, resolution=timedelta(seconds=settings.api_key_last_used_resolution_seconds)
    )
    return AuthSubject(
        tenant=tenant,
        scopes=frozenset(Scope(s) for s in key.scopes if s in KEY_SCOPES),
        api_key=key,
        store_id=key.store_id,
    )


def _secret(settings: Settings) -> str:
    # create_app fills a development secret; a missing one here is a programming error, not a client's.
    assert settings.secret_key, "MOSTRADOR_SECRET_KEY is not set"
    return settings.secret_key


class Authenticator:
    """A dependency: the caller, who must hold `required_scopes` (and be a user, with `users_only`)."""

    def __init__(
        self, *, required_scopes: Collection[Scope] = (), users_only: bool = False, tenant_wide: bool = False
    ) -> None:
        self.required_scopes = frozenset(required_scopes)
        self.users_only = users_only
        # The route acts on the tenant as a whole (creates a store): refused to a store-limited key.
        self.tenant_wide = tenant_wide

    async def __call__(
        self,
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        authorization: BearerCredentials,
        cookie: SessionCookie,
    ) -> AuthSubject:
        subject = await authenticate(session, settings, authorization, cookie)
        if (
            subject.by_cookie
            and request.method not in SAFE_METHODS
            and not csrf_matches(_secret(settings), subject.token_id or "", request.headers.get(CSRF_HEADER))
        ):
            raise CsrfFailed()
        missing = self.required_scopes - subject.scopes
        if missing:
            raise MissingScope(set(missing))
        if self.users_only and subject.user is None:
            raise UsersOnly()
        if self.tenant_wide and subject.store_id is not None:
            raise StoreLimited()
        _check_store(request, subject)
        return subject


def _check_store(request: Request, subject: AuthSubject) -> None:
    """A store-limited key reaches only its store: any other `{store_id}` is a 404, like an unknown store."""
    store_id = request.path_params.get("store_id")
    if store_id is None or subject.store_id is None:
        return
    try:
        if uuid.UUID(store_id) == subject.store_id:
            return
    except ValueError:
        pass
    raise StoreNotFound(store_id)
