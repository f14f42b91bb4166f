from __future__ import annotations

from app.kit.errors import Conflict, MostradorError


class SendingError(MostradorError):
    """Base of the sending domain's errors."""


class StoreNotConnected(SendingError, Conflict):
    code = "store_not_connected"

    def __init__(self, status: str) -> None:
        super().__init__(
            f"the store is not connected to WhatsApp (status: {status}), so nothing can be sent: link it "
            "(POST /v1/stores/{id}/link) and wait for the status `connected`",
            details={"status": status},
        )


class IdempotencyKeyReused(SendingError):
    status_code = 422
    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request for this store; use a new key "
            "for a new message",
            details={"idempotency_key": key},
        )


class IdempotencyKeyInUse(SendingError, Conflict):
    """The key's first request has not finished (cannot normally be seen: the second request waits for it)."""

    code = "idempotency_key_in_use"

    def __init__(self, key: str) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still in progress; retry",
            details={"idempotency_key": key},
        )
