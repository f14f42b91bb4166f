from __future__ import annotations

from app.kit.errors import MostradorError, NotFound


class MessageError(MostradorError):
    """Base of the messages domain's errors."""


class MessageNotFound(MessageError, NotFound):
    code = "message_not_found"

    def __init__(self, message_id: str) -> None:
        # The same body for an unknown id, a malformed one and another tenant's message: never reveal existence.
        super().__init__("message not found", details={"message_id": message_id})
