"""Webhook secrets and signatures (the Standard Webhooks specification, https://www.standardwebhooks.com).

- A secret is `whsec_` + base64 of 24 random bytes; the HMAC key is the decoded bytes.
- Stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from MOSTRADOR_SECRET_KEY, so a copy
  of the database alone signs nothing.
- Headers: `webhook-id` (stable across retries, redeliveries and replays of one event to one webhook),
  `webhook-timestamp` (Unix seconds of this attempt), `webhook-signature` (`v1,<base64 HMAC-SHA256 of
  "id.timestamp.body">`, space-separated when a rotated-out secret still signs: receivers accept either).

The tests verify these signatures with the `standardwebhooks` package, never with this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken

SECRET_PREFIX = "whsec_"
_KEY_CONTEXT = b"mostrador webhook secrets v1"


class SecretBox:
    """Encrypts and decrypts webhook secrets with a key derived from the process's secret key."""

    def __init__(self, secret_key: str) -> None:
        derived = hmac.new(secret_key.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:  # MOSTRADOR_SECRET_KEY changed since the secret was stored
            raise ValueError(
                "a webhook secret cannot be decrypted: was MOSTRADOR_SECRET_KEY changed?"
            ) from exc


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def message_id(webhook_id: uuid.UUID, event_id: int) -> str:
    """`webhook-id` of an event sent to a webhook: the same for every attempt, redelivery and replay of it, and
    opaque (the event's sequential id would tell one tenant how busy the others are)."""
    return "msg_" + uuid.uuid5(webhook_id, str(event_id)).hex


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers, with one signature per secret still valid (the current one first)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": "Mostrador-Webhooks/1",
    }
