"""Signed access and session tokens (JWT, HS256, joserfc: authlib's JOSE implementation since authlib 1.6).

The signing key is derived from MOSTRADOR_SECRET_KEY for this one purpose, so a token signature never doubles as
an API-key hash or a CSRF token. `iat` carries fractions of a second: a token is valid only if it was issued
after its user's `tokens_valid_after`, which logout and a password change move to "now".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

ISSUER = "mostrador"
ALGORITHMS = ["HS256"]  # only this one: never "none", never an algorithm the token names for itself
# Tolerated clock difference between API replicas (a token issued by one, checked by another).
CLOCK_LEEWAY_SECONDS = 5


class TokenKind(StrEnum):
    access = "access"  # `Authorization: Bearer`
    session = "session"  # the web page's HttpOnly cookie


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A key for one purpose, from the one secret (HMAC as a key-derivation function)."""
    return hmac.new(secret_key.encode(), f"mostrador:{purpose}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    token_id: str
    issued_at: float
    kind: TokenKind


def issue_token(
    secret_key: str, *, user_id: uuid.UUID, tenant_id: uuid.UUID, kind: TokenKind, ttl_seconds: int
) -> tuple[str, TokenClaims]:
    now = time.time()
    claims = TokenClaims(
        user_id=user_id, tenant_id=tenant_id, token_id=secrets.token_urlsafe(16), issued_at=now, kind=kind
    )
    payload = {
        "iss": ISSUER,
        "sub": str(user_id),
        "tid": str(tenant_id),
        "jti": claims.token_id,
        "kind": kind.value,
        "iat": now,
        "exp": int(now) + ttl_seconds,
    }
    key = OctKey.import_key(derive_key(secret_key, "jwt"))
    return jwt.encode({"alg": ALGORITHMS[0]}, payload, key, algorithms=ALGORITHMS), claims


def read_token(secret_key: str, token: str, *, kind: TokenKind) -> TokenClaims | None:
    """The token's claims if its signature, issuer, kind and lifetime check out; None otherwise."""
    key = OctKey.import_key(derive_key(secret_key, "jwt"))
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": ISSUER},
        kind={"essential": True, "value": kind.value},
        sub={"essential": True},
        tid={"essential": True},
        jti={"essential": True},
        iat={"essential": True},
        exp={"essential": True},
    )
    try:
        decoded = jwt.decode(token, key, algorithms=ALGORITHMS)
        registry.validate(decoded.claims)
        claims = decoded.claims
        return TokenClaims(
            user_id=uuid.UUID(claims["sub"]),
            tenant_id=uuid.UUID(str(claims["tid"])),
            token_id=str(claims["jti"]),
            issued_at=float(claims["iat"]),
            kind=kind,
        )
    except (JoseError, ValueError, TypeError, KeyError):
        return None


def new_link_token(marker: str) -> str:
    """A high-entropy token for a link (invite, onboarding): 256 random bits, url-safe."""
    return f"{marker}_{secrets.token_urlsafe(32)}"


def hash_link_token(secret_key: str, purpose: str, token: str) -> str:
    """Keyed hash of a link token, stored and looked up instead of the token (deterministic, so indexable)."""
    return hmac.new(derive_key(secret_key, purpose), token.encode(), hashlib.sha256).hexdigest()
