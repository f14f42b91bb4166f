"""Start-up failures an operator can cause: each ends with a plain message saying what is wrong and what to
do, a non-zero exit code, and no traceback unless asked for (--debug, MOSTRADOR_LOG_LEVEL=DEBUG)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mostrador import as_root
from mostrador.embedded import EmbeddedPostgres, free_port
from tests.support import execute

pytestmark = pytest.mark.slow

PASSWORD = "right-password"


def _mostrador(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environ.update({"MOSTRADOR_WHATSAPP_DRIVER": "simulator", **env})
    return subprocess.run(
        [sys.executable, "-m", "mostrador", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _assert_plain_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    # What is wrong and what to do, in a line or two: no warning of a library nor anything else around it (the
    # info lines of what had started before, in order, are not part of the message).
    message = [line for line in result.stderr.splitlines() if line.strip() and "[info     ]" not in line]
    assert 1 <= len(message) <= 2, result.stderr


def _closed_port() -> int:
    """A port nothing listens on (free_port binds and releases it)."""
    return free_port()


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[str]:
    """A PostgreSQL of its own that wants a password, as a real server does (the embedded one trusts all)."""
    root = Path(tempfile.mkdtemp(prefix="mostrador-password-"))
    postgres = EmbeddedPostgres(root / "data")
    url = postgres.start()
    try:
        execute(url, f"ALTER USER postgres PASSWORD '{PASSWORD}'")
        (postgres.pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
        execute(url, "SELECT pg_reload_conf()")
        yield make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    finally:
        postgres.stop()
        as_root.remove_data(postgres.root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_run_on_a_port_in_use(listening_port: int, tmp_path: Path) -> None:
    result = _mostrador("run", "--port", str(listening_port), "--data-dir", str(tmp_path / "data"))
    _assert_plain_failure(result, f"port {listening_port} is in use", "MOSTRADOR_PORT / --port")
    assert result.returncode == 1
    assert not (tmp_path / "data").exists(), "nothing should start before the port is known to be free"


def test_api_on_a_port_in_use(listening_port: int) -> None:
    result = _mostrador(
        "api",
        MOSTRADOR_PORT=str(listening_port),
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
    )
    _assert_plain_failure(result, f"port {listening_port} is in use")


def test_run_with_a_data_dir_that_cannot_be_written(tmp_path: Path) -> None:
    # A path below a regular file cannot be made, not even by root (who ignores permission bits).
    (tmp_path / "a-file").write_text("")
    data_dir = tmp_path / "a-file" / "data"
    result = _mostrador("run", "--port", str(free_port()), "--data-dir", str(data_dir))
    _assert_plain_failure(result, f"cannot write the data dir {data_dir}", "MOSTRADOR_DATA_DIR / --data-dir")
    assert result.returncode == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory all the same")
def test_run_with_a_read_only_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o500)
    result = _mostrador("run", "--port", str(free_port()), "--data-dir", str(data_dir))
    _assert_plain_failure(result, f"cannot write the data dir {data_dir} (Permission denied)")


@pytest.mark.parametrize("command", ["run", "migrate", "api", "sessions", "worker"])
def test_a_database_url_that_does_not_answer(command: str, tmp_path: Path) -> None:
    port = _closed_port()
    result = _mostrador(
        command,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/mostrador",
        REDIS_URL=os.environ["REDIS_URL"],
        MOSTRADOR_PORT=str(free_port()),
        MOSTRADOR_DATA_DIR=str(tmp_path / "data"),
    )
    _assert_plain_failure(
        result, f"PostgreSQL at 127.0.0.1:{port} does not answer (Connection refused)", "DATABASE_URL"
    )
    assert result.returncode == 1


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_a_database_url_with_a_wrong_password(command: str, password_postgres: str, tmp_path: Path) -> None:
    url = make_url(password_postgres).set(password="wrong").render_as_string(hide_password=False)
    result = _mostrador(
        command,
        DATABASE_URL=url,
        REDIS_URL=os.environ["REDIS_URL"],
        MOSTRADOR_PORT=str(free_port()),
        MOSTRADOR_DATA_DIR=str(tmp_path / "data"),
    )
    _assert_plain_failure(result, "refused user 'postgres': wrong password", "fix DATABASE_URL")
    assert "wrong@" not in result.stderr and PASSWORD not in result.stderr, "passwords are not printed"


def test_a_database_url_naming_a_missing_database(password_postgres: str) -> None:
    url = make_url(password_postgres).set(database="no_such_db").render_as_string(hide_password=False)
    result = _mostrador("migrate", DATABASE_URL=url)
    _assert_plain_failure(result, "has no database 'no_such_db'", "createdb no_such_db")


def test_the_right_password_passes_the_check(password_postgres: str) -> None:
    """The check itself refuses nothing that works: the same server with the right password migrates."""
    result = _mostrador("migrate", DATABASE_URL=password_postgres)
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout


@pytest.mark.parametrize("command", ["run", "sessions"])
def test_a_redis_that_does_not_answer(command: str, tmp_path: Path) -> None:
    port = _closed_port()
    result = _mostrador(
        command,
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        MOSTRADOR_PORT=str(free_port()),
        MOSTRADOR_DATA_DIR=str(tmp_path / "data"),
    )
    _assert_plain_failure(
        result, f"Redis at 127.0.0.1:{port} does not answer (Connection refused)", "REDIS_URL"
    )
    assert result.returncode == 1


def test_a_python_too_old_is_refused() -> None:
    # This interpreter pretends to be 3.9 before importing mostrador, as an old one would be.
    code = (
        "import runpy, sys; sys.version_info = (3, 9, 18, 'final', 0); sys.argv = ['mostrador', 'run']; "
        "runpy.run_module('mostrador', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    _assert_plain_failure(result, "Mostrador needs Python 3.11 or newer", "is Python 3.9")
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--debug", "migrate"), {}),
        (("run", "--debug"), {}),
        (("migrate",), {"MOSTRADOR_LOG_LEVEL": "DEBUG"}),
    ],
)
def test_debug_shows_the_traceback(args: tuple[str, ...], env: dict[str, str], tmp_path: Path) -> None:
    result = _mostrador(
        *args,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{_closed_port()}/x",
        MOSTRADOR_PORT=str(free_port()),
        MOSTRADOR_DATA_DIR=str(tmp_path / "data"),
        **env,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "does not answer" in result.stderr, result.stderr
