from __future__ import annotations

from typing import Any

from app.kit.errors import Conflict, MostradorError, NotFound


class StoreError(MostradorError):
    """Base of the stores domain's errors."""


class StoreNotFound(StoreError, NotFound):
    code = "store_not_found"

    def __init__(self, store_id: str) -> None:
        # The same body for an unknown id, a malformed one and another tenant's store: never reveal existence.
        super().__init__("store not found", details={"store_id": store_id})


class QrNotAvailable(StoreError, NotFound):
    code = "qr_not_available"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message, details=details)


class StoreAlreadyConnected(StoreError, Conflict):
    code = "store_already_connected"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class PairingCodeTimeout(StoreError):
    status_code = 504
    code = "pairing_code_timeout"
