"""Running `mostrador` processes for the operations tests: free ports, probes, scrapes."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mostrador.embedded import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, parsed by Prometheus's own text parser, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def start(log_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`mostrador <args>` with its output (both streams) in `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "mostrador", *args], env=env, stdout=log, stderr=log)


def free_port_pair() -> int:
    """A free port whose next port is free too (the all-in-one's session manager and worker)."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


async def wait_status(
    url: str, status: int, *, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None
) -> httpx.Response:
    """Poll `url` until it answers `status` (the positive signal; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last: object = None
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"the process exited with {proc.returncode} while waiting for {url}")
            try:
                response = await http.get(url)
                if response.status_code == status:
                    return response
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s (last: {last!r})")


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def families(found: Samples) -> set[str]:
    return {name for name, _ in found}
