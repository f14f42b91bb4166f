"""uvicorn's server, made to exit 0 on SIGTERM/SIGINT after its graceful shutdown.

uvicorn (0.29+) re-raises SIGINT/SIGTERM once it has shut down, so the process ends *by* the signal (exit code
-15 / 143), which an orchestrator reports as a failure, and which would skip our orderly stop of the
all-in-one's children and embedded servers (SIGTERM's default action ends the process at once). Here a signal
only asks to stop.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import uvicorn


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
