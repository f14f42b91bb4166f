"""The OpenAPI document, completed with what FastAPI cannot see from the routes' signatures.

FastAPI documents a route's success answer and its 422, but the 422 as its own `HTTPValidationError` shape,
while every error here is `{"error": {"code", "message", "details"}}` (`app/kit/errors.py`); it does not
know that a body that is not JSON is a 400, that an authenticated route answers 401 and 403, or that an
unknown id in the path is a 404. `complete_openapi` adds these once for every route, so that the document
says what the API answers (a test runs schemathesis against it: `tests/api/test_schemathesis.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.kit.nul import NO_NUL_PATTERN

ERROR_SCHEMA_NAME = "Error"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
_ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "description": "Every 4xx and 5xx answer.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable, e.g. `not_found`."},
                "message": {"type": "string", "description": "For people."},
                "details": {
                    "description": "More about it, or null; for `validation_error` a list of "
                    "`{field, message, type}`."
                },
            },
        }
    },
}
# Added where the route does not say more itself.
_MALFORMED_BODY = "The body is not valid JSON"
_INVALID = "Invalid request: the details name each field and what is wrong with it"
_UNAUTHENTICATED = "Missing, invalid or expired credentials"
_FORBIDDEN = "The credentials may not do this (a missing scope, an API key on a users-only route, a cookie "
_FORBIDDEN += "write without its X-CSRF-Token)"
_NOT_FOUND = "Nothing with this id here (another tenant's objects are not found either)"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at `/openapi.json` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            complete_openapi(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete_openapi(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = _ERROR_SCHEMA
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                _complete_operation(path, operation)
    # FastAPI's own validation-error shape is never answered.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _no_nul(document)
    schemas[_ANY_NAME] = _ANY_SCHEMA


# What an object takes besides its properties (they are ignored): any JSON value, but no NUL in its strings.
_ANY_NAME = "AnyValue"
_ANY_REF = {"$ref": f"#/components/schemas/{_ANY_NAME}"}
_ANY_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value whose strings hold no NUL character.",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": NO_NUL_PATTERN},
        {"type": "array", "items": _ANY_REF},
        {"type": "object", "additionalProperties": _ANY_REF},
    ],
}


def _no_nul(node: Any) -> None:
    """Every free-form string (no pattern, format or enum of its own) declares that it holds no NUL, and so
    does every value an object takes besides its properties: the API refuses a NUL anywhere in a query string
    or a JSON body (`app/kit/nul.py`)."""
    if isinstance(node, dict):
        if (
            node.get("type") == "string"
            and not {"pattern", "format", "enum", "const"} & node.keys()
            and "contentMediaType" not in node
        ):
            node["pattern"] = NO_NUL_PATTERN
        for value in node.values():
            _no_nul(value)
        if node.get("type") == "object" and node.get("additionalProperties", True) is True:
            node["additionalProperties"] = _ANY_REF
    elif isinstance(node, list):
        for value in node:
            _no_nul(value)


def _complete_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": _MALFORMED_BODY})
    if operation.get("security"):
        responses.setdefault("401", {"description": _UNAUTHENTICATED})
        responses.setdefault("403", {"description": _FORBIDDEN})
    if "{" in path:
        responses.setdefault("404", {"description": _NOT_FOUND})
    if "422" in responses or operation.get("parameters") or "requestBody" in operation:
        validation = responses.setdefault("422", {"description": _INVALID})
        if validation.get("description") == "Validation Error":
            validation["description"] = _INVALID
    for status, response in responses.items():
        if status[0] in "45":
            response["content"] = {"application/json": {"schema": _ERROR_REF}}
    operation["responses"] = dict(sorted(responses.items()))
