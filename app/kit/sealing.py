"""Opaque tokens that hide what they carry and cannot be forged.

A changes-feed cursor holds a transaction id and a row id of the whole server's change log: in the clear,
two cursors a minute apart would tell a tenant how much every other tenant wrote meanwhile. Sealed (AES-GCM
with a key derived from `MOSTRADOR_SECRET_KEY` and the token's purpose), a token reads as random bytes, and
one changed, forged or made for another context (another store) does not open.

Sealing is deterministic (a synthetic nonce: an HMAC of the context and payload, as in SIV modes), so one
position always gives the same cursor and clients may compare cursors; equal tokens reveal only that their
payloads are equal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class Sealer:
    def __init__(self, secret_key: str, purpose: str) -> None:
        root = hmac.new(
            secret_key.encode(), f"mostrador sealed tokens v1: {purpose}".encode(), hashlib.sha256
        )
        self._aead = AESGCM(hmac.new(root.digest(), b"encryption", hashlib.sha256).digest())
        self._nonce_key = hmac.new(root.digest(), b"nonce", hashlib.sha256).digest()

    def seal(self, payload: bytes, *, context: bytes = b"") -> str:
        tagged = len(context).to_bytes(4, "big") + context + payload
        nonce = hmac.new(self._nonce_key, tagged, hashlib.sha256).digest()[:_NONCE_BYTES]
        sealed = nonce + self._aead.encrypt(nonce, payload, context)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def unseal(self, token: str, *, context: bytes = b"") -> bytes:
        """The payload; ValueError for a token this sealer did not make for this context."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context)
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise ValueError("not a token of this kind") from exc
