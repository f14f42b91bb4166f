"""The background loops of the long-running services (session manager, worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop
from structlog.typing import FilteringBoundLogger


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-running service's main coroutine on uvloop, as uvicorn runs the API: its socket I/O and
    callbacks cost less CPU than asyncio's own loop, and the session manager and worker are round trips all
    the way down (bench/pipeline.py: p99 at 800 msg/s 0.81-0.92x, in alternating runs on one machine)."""
    uvloop.run(main)


async def every(
    step: Callable[[], Awaitable[object]], interval: float | Callable[[], float], log: FilteringBoundLogger
) -> None:
    """Run `step` now and then every `interval` seconds (a callable: asked again each time) until cancelled.
    A failing step is logged and tried again at the next tick: one bad round must not end the loop."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("background step failed", step=getattr(step, "__name__", "?"), exc_info=True)
        await asyncio.sleep(interval() if callable(interval) else interval)


async def forever(run: Callable[[], Awaitable[None]], log: FilteringBoundLogger) -> None:
    """Run a loop that should never end, restarting it (after a second) if it does: a dead stream reader stops
    all the work while the process looks healthy."""
    name = getattr(run, "__qualname__", "?")
    while True:
        try:
            await run()
            log.error("background loop ended; restarting it", loop=name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop failed; restarting it", loop=name)
        await asyncio.sleep(1)
