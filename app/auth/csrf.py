"""CSRF protection for requests authenticated by the session cookie (signed double submit).

The CSRF token is an HMAC of the session token's id: the page gets it at login (body and a readable cookie) and
sends it back in `X-CSRF-Token`. Another site can make the browser send the cookie, but cannot read the token
nor compute it. Bearer and API-key requests need none: a browser never adds those headers by itself.
"""

from __future__ import annotations

import hashlib
import hmac

from app.auth.tokens import derive_key

SESSION_COOKIE = "mostrador_session"
CSRF_COOKIE = "mostrador_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(secret_key: str, token_id: str) -> str:
    return hmac.new(derive_key(secret_key, "csrf"), token_id.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret_key: str, token_id: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(csrf_token(secret_key, token_id), sent)
