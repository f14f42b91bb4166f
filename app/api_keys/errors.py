from __future__ import annotations

from app.kit.errors import MostradorError, NotFound


class ApiKeyError(MostradorError):
    """Base of the API keys domain's errors."""


class ApiKeyNotFound(ApiKeyError, NotFound):
    code = "api_key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__("API key not found", details={"api_key_id": key_id})


class ScopeNotGrantable(ApiKeyError):
    status_code = 422
    code = "validation_error"

    def __init__(self, scopes: list[str]) -> None:
        super().__init__(
            "invalid request: body.scopes",
            details=[
                {
                    "field": "body.scopes",
                    "message": f"an API key may not hold {', '.join(scopes)}",
                    "type": "value_error",
                }
            ],
        )
