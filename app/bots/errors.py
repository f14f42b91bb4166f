from __future__ import annotations

from pydantic_core import ErrorDetails

from app.kit.errors import MostradorError


class BotError(MostradorError):
    """Base of the bots domain's errors."""


class InvalidBotConfig(BotError):
    status_code = 422
    code = "validation_error"

    def __init__(self, errors: list[ErrorDetails]) -> None:
        # Shaped like FastAPI's validation errors (the config is checked after the body, against the model its
        # `kind` selects), so clients handle both the same way: "body.config.services.0.duration_minutes".
        details = [
            {
                "field": ".".join(["body", "config", *(str(part) for part in error["loc"])]),
                "message": error["msg"],
                "type": error["type"],
            }
            for error in errors
        ]
        fields = ", ".join(dict.fromkeys(detail["field"] for detail in details))
        super().__init__(f"invalid request: {fields}", details=details)
