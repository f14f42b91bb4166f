"""The key format and its hash.

`mst_<prefix>_<secret>`: 12 hex characters of prefix (finds the row; shown in listings), 43 url-safe characters
of secret (256 bits). Only an HMAC-SHA256 of the whole key is stored, keyed by a key derived from
MOSTRADOR_SECRET_KEY: fast enough for every request (a key is high-entropy, so a slow hash would add nothing but
~50 ms per request), and a stolen database alone cannot check guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from app.auth.tokens import derive_key

KEY_MARKER = "mst"
PREFIX_BYTES = 6
SECRET_BYTES = 32


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    whole: str


def generate_key() -> ParsedKey:
    prefix = secrets.token_hex(PREFIX_BYTES)
    return ParsedKey(prefix=prefix, whole=f"{KEY_MARKER}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}")


def looks_like_key(credential: str) -> bool:
    return credential.startswith(f"{KEY_MARKER}_")


def parse_key(credential: str) -> ParsedKey | None:
    parts = credential.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARKER or len(parts[1]) != 2 * PREFIX_BYTES or not parts[2]:
        return None
    return ParsedKey(prefix=parts[1], whole=credential)


def hash_key(secret_key: str, key: str) -> str:
    return hmac.new(derive_key(secret_key, "api-key"), key.encode(), hashlib.sha256).hexdigest()


def key_matches(secret_key: str, key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(secret_key, key), stored_hash)
