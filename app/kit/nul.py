"""NUL characters are refused at the door, in the query string and in JSON bodies.

PostgreSQL cannot store U+0000 in text or jsonb: a request carrying one in any field that reaches the database
would fail there, as a 500. Refusing it up front is one rule for every route, and the OpenAPI document says so
(`app/kit/openapi.py` gives every free-form string the pattern `NO_NUL_PATTERN`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.errors import error_body

NO_NUL_PATTERN = r"^[^\x00]*$"
# A name or text that is stripped of surrounding whitespace and must not be empty then: at least one
# character that is not whitespace (Python's `\s` is str.isspace(), the set strip() removes), and no NUL.
NOT_BLANK_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
NOT_BLANK = Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN})


class RejectNulMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            await _refuse("query", "a query parameter contains a NUL character")(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if b"json" not in headers.get(b"content-type", b""):
            await self.app(scope, receive, send)
            return
        # JSON: the body is read whole anyway; read it here, look, and hand it on.
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if b"\\u0000" in body and _has_nul(body):
            await _refuse("body", "a string in the body contains a NUL character (\\u0000)")(
                scope, receive, send
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _has_nul(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return False  # not JSON: the route answers its 400
    return _walk(document)


def _walk(value: Any) -> bool:
    # Values only: an unknown key is ignored by the models, and every stored mapping has known keys.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_walk(item) for item in value)
    if isinstance(value, dict):
        return any(_walk(item) for item in value.values())
    return False


def _refuse(where: str, message: str) -> JSONResponse:
    details = [{"field": where, "message": message, "type": "value_error"}]
    return JSONResponse(error_body("validation_error", f"invalid request: {where}", details), status_code=422)
