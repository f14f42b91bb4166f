"""The API's request metrics and access log, by route template: `/v1/stores/{store_id}`, never the raw path.

A raw path carries ids (unbounded label values) and, on a few routes, secrets (an onboarding link's token), so
neither the metrics nor the log line have it. uvicorn's own access log is off for the same reason.
A plain ASGI middleware: it sees streaming responses (server-sent events) through without buffering them.
"""

from __future__ import annotations

import time

import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit import metrics

log = structlog.get_logger("mostrador.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # every path no route knows (a 404): one label value, not one per path


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the application fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_template(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(method, route).observe(seconds)
            if route not in ("/healthz", "/readyz", "/metrics"):  # probes and scrapes every few seconds
                store_id = scope.get("path_params", {}).get("store_id")
                extra = {"store_id": str(store_id)} if store_id else {}
                log.info(
                    "request", method=method, route=route, status=status, ms=round(seconds * 1000, 1), **extra
                )


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    # Not routed (a 404, or a mounted app such as /static): find the route that matches, if any.
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED)) or UNMATCHED
    return UNMATCHED
