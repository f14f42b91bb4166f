"""One error shape for every 4xx/5xx: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.kit.http_metrics import route_template

log = structlog.get_logger(__name__)


class MostradorError(Exception):
    """Base of every domain error; each domain subclasses it with its status code and error code."""

    status_code: int = 400
    code: str = "bad_request"
    headers: dict[str, str] | None = None  # e.g. WWW-Authenticate on a 401, Retry-After on a 429

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class NotFound(MostradorError):
    status_code = 404
    code = "not_found"


class Conflict(MostradorError):
    status_code = 409
    code = "conflict"


class ServiceUnavailable(MostradorError):
    status_code = 503
    code = "unavailable"


class CommitFailed(ServiceUnavailable):
    code = "commit_failed"

    def __init__(self) -> None:
        # A commit that failed on a lost connection may have gone through: the client is told to check.
        super().__init__("the database did not confirm the change; it was most likely not saved: retry")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _mostrador_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MostradorError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=exc.headers
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    details = None if isinstance(exc.detail, str) else exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse(
        error_body(_code_for(exc.status_code), message, details), status_code=exc.status_code, headers=headers
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes. Starlette's own 405 names only the first route's: the
    path's GET and POST are two routes, so a PUT was told `Allow: GET` alone. Asked of each route through
    `matches()` (FastAPI nests included routers, so the routes' own method sets are not all in view)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())),
            "message": err.get("msg"),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    fields = ", ".join(d["field"] for d in details) or "request"
    return JSONResponse(
        error_body("validation_error", f"invalid request: {fields}", details), status_code=422
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # The route template, not the path: a path may carry a token (an onboarding link's).
    log.exception("unhandled error", route=route_template(request.scope), method=request.method)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MostradorError, _mostrador_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
