"""Child processes of `mostrador run`: started, restarted when they die, stopped in order.

The session manager runs as a child so that a crash inside the WhatsApp library (a Go panic in neonize takes
the whole process down) cannot take the API with it; the supervisor restarts it with a growing delay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import structlog

from mostrador.embedded import _die_with_parent

log = structlog.get_logger(__name__)

RESTART_DELAY_MAX = 30.0
STOP_TIMEOUT = 30.0


class Supervisor:
    def __init__(self, env: dict[str, str], *, stop_timeout: float = STOP_TIMEOUT) -> None:
        self.env = env
        self.stop_timeout = stop_timeout
        self._commands: dict[str, list[str]] = {}
        self._envs: dict[str, dict[str, str]] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def add(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        self._commands[name] = [sys.executable, "-m", "mostrador", *args]
        self._envs[name] = {**self.env, **(env or {})}

    def start(self) -> None:
        # Children are started from the supervisor thread, which lives as long as they do: PR_SET_PDEATHSIG
        # fires when the *thread* that forked a child exits.
        self._thread.start()

    def _spawn(self, name: str) -> None:
        self._procs[name] = subprocess.Popen(
            self._commands[name],
            env=self._envs[name],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(signal.SIGTERM),
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )
        log.info("child started", child=name, pid=self._procs[name].pid)

    def _watch(self) -> None:
        failures = dict.fromkeys(self._commands, 0)
        for name in self._commands:
            self._spawn(name)
        while not self._stopping.wait(0.5):
            for name, proc in list(self._procs.items()):
                code = proc.poll()
                if code is None or self._stopping.is_set():
                    continue
                failures[name] += 1
                delay = min(RESTART_DELAY_MAX, 0.5 * 2 ** failures[name])
                log.error("child exited; restarting", child=name, code=code, in_seconds=delay)
                if self._stopping.wait(delay):
                    break
                self._spawn(name)
        self._stop_children()

    def _stop_children(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # a session manager hands its stores over on SIGTERM
        deadline = time.monotonic() + self.stop_timeout
        for name, proc in self._procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing it", child=name)
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(self.stop_timeout + 5)


def child_env(database_url: str, redis_url: str, secret_key: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    if secret_key:
        env["MOSTRADOR_SECRET_KEY"] = secret_key
    return env
