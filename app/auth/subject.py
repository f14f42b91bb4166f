from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.auth.scopes import Scope
from app.models import ApiKey, Tenant, User


@dataclass(frozen=True)
class AuthSubject:
    """Who is calling: a user (bearer token or session cookie) or an API key, always of one tenant."""

    tenant: Tenant
    scopes: frozenset[Scope]
    user: User | None = None
    api_key: ApiKey | None = None
    # A key limited to one store: every other store is a 404 to it, and lists show only this one.
    store_id: uuid.UUID | None = None
    # Authenticated by the session cookie: state-changing requests must carry the CSRF token.
    by_cookie: bool = False
    # The session (or access) token's id, for the CSRF token bound to it.
    token_id: str | None = None
