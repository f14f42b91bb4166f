from __future__ import annotations

from app.kit.errors import MostradorError, NotFound


class ConversationError(MostradorError):
    """Base of the conversations domain's errors."""


class ConversationNotFound(ConversationError, NotFound):
    code = "conversation_not_found"

    def __init__(self, conversation_id: str) -> None:
        # The same body for an unknown id, a malformed one and another tenant's chat: never reveal existence.
        super().__init__("conversation not found", details={"conversation_id": conversation_id})
