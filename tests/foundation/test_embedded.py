"""The embedded servers: data that survives restarts, and no server left behind by a dead parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis as redis_sync

from app.kit.migrations import upgrade
from mostrador.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, free_port
from tests.support import execute

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: that is 0700, and as root the embedded PostgreSQL runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="mostrador-embedded-"))
    os.chmod(root, 0o755)
    yield root / "data"
    for proc in _servers_under(root):
        proc.kill()
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _servers_under(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(root) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(proc)
    return found


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        time.sleep(0.1)
    return alive


def test_data_survives_a_restart(data_dir: Path) -> None:
    postgres, redis = EmbeddedPostgres(data_dir), EmbeddedRedis(data_dir)
    url = postgres.start()
    try:
        upgrade(url)
        execute(url, "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'Panadería Sol')")
        redis_sync.Redis.from_url(redis.start()).set("kept", "yes")
    finally:
        redis.stop()
        postgres.stop()

    postgres, redis = EmbeddedPostgres(data_dir), EmbeddedRedis(data_dir)
    url = postgres.start()
    try:
        [rows] = execute(url, "SELECT name FROM tenants")
        assert rows == [("Panadería Sol",)]
        assert redis_sync.Redis.from_url(redis.start()).get("kept") == b"yes"
    finally:
        redis.stop()
        postgres.stop()


STARTER = """
import json, sys, time
from pathlib import Path
from mostrador.embedded import EmbeddedPostgres, EmbeddedRedis
pg, rd = EmbeddedPostgres(Path(sys.argv[1])), EmbeddedRedis(Path(sys.argv[1]))
pg.start(); rd.start()
print("PIDS", json.dumps([pg.proc.pid, rd.proc.pid]), flush=True)
time.sleep(600)
"""


def test_servers_die_with_a_sigkilled_parent(data_dir: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    line = ""
    while not line.startswith("PIDS "):  # structlog's own lines come first on stdout
        line = parent.stdout.readline()
        assert line, "the starter exited without starting the servers"
    pids = json.loads(line.removeprefix("PIDS "))
    assert all(psutil.pid_exists(pid) for pid in pids)

    parent.kill()
    parent.wait()

    assert _wait_gone(pids, timeout=20) == []
    assert _servers_under(data_dir.parent) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_as_root_an_unreachable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    # pytest's tmp_path is 0700: the unprivileged user cannot enter it.
    with pytest.raises(EmbeddedServerError, match="cannot reach"):
        EmbeddedPostgres(tmp_path / "data").start()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert proc.poll() is None, "mostrador run exited early"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout} s")


def _pair_a_store(base: str) -> None:
    """The all-in-one runs the session manager too: a store pairs through the simulator."""
    signup = {"email": "demo@example.com", "password": "a demo passphrase", "business_name": "Demo"}
    token = httpx.post(f"{base}/v1/auth/signup", json=signup).json()["access_token"]
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    store = http.post("/v1/stores", json={"name": "Demo"}).json()
    assert http.post(f"/v1/stores/{store['id']}/link").status_code == 202
    deadline = time.monotonic() + 30
    while http.get(f"/v1/stores/{store['id']}/qr").status_code != 200:
        assert time.monotonic() < deadline, "no QR code from the session manager"
        time.sleep(0.1)
    assert http.post(f"/v1/sim/stores/{store['id']}/scan", json={}).status_code == 202
    while http.get(f"/v1/stores/{store['id']}").json()["status"] != "connected":
        assert time.monotonic() < deadline, "the store did not connect"
        time.sleep(0.1)


def _run_once(data_dir: Path, *, pair: bool = False) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["MOSTRADOR_WHATSAPP_DRIVER"] = "simulator"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mostrador", "run", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seconds = _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        servers = [p.pid for p in _servers_under(data_dir)]
        assert servers, "the embedded servers should run under the data dir"
        children = [c.pid for c in psutil.Process(proc.pid).children()]
        if pair:
            _pair_a_store(f"http://127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(60) == 0
    assert _wait_gone(servers + children, timeout=10) == []
    return seconds


def test_mostrador_run_starts_on_embedded_servers_and_stops_cleanly(data_dir: Path) -> None:
    first = _run_once(data_dir, pair=True)
    secret = (data_dir / "secret_key").read_text()

    # Between runs, write a row straight into the embedded database...
    postgres = EmbeddedPostgres(data_dir)
    url = postgres.start()
    try:
        execute(url, "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'Clínica Norte')")
    finally:
        postgres.stop()

    second = _run_once(data_dir)

    # ...and the second run found it, with the same secret and schema.
    postgres = EmbeddedPostgres(data_dir)
    url = postgres.start()
    try:
        [tenants, version] = execute(
            url, "SELECT name FROM tenants ORDER BY created_at", "SELECT version_num FROM alembic_version"
        )
    finally:
        postgres.stop()
    assert tenants == [("Demo",), ("Clínica Norte",)]  # the one signed up in the first run, and ours
    assert len(version) == 1
    assert (data_dir / "secret_key").read_text() == secret
    print(json.dumps({"mostrador_run_ready_seconds": {"first": round(first, 2), "second": round(second, 2)}}))
