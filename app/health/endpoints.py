from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.dependencies import StateDep
from app.kit import metrics
from app.kit.errors import error_body

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus text format (docs/architecture.md "Observe")."""
    return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT:.0f} s"
    except Exception as exc:  # any failure means not ready; the body says which
        return name, f"{type(exc).__name__}: {exc}".strip()
    return name, "ok"


@router.get("/readyz", summary="PostgreSQL and Redis answer", responses={503: {"description": "Not ready"}})
async def readyz(state: StateDep) -> JSONResponse:
    async def postgres() -> None:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await state.redis.ping()

    checks = dict(await asyncio.gather(_check("postgres", postgres()), _check("redis", redis())))
    if all(result == "ok" for result in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(f"{name}: {result}" for name, result in checks.items() if result != "ok")
    return JSONResponse(error_body("not_ready", f"not ready ({failing})", checks), status_code=503)
