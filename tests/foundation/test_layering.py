"""Who may import whom, read from the source with `ast` (imports under TYPE_CHECKING count too):

- only `sessions/drivers/neonize/` imports neonize: a Go panic in it takes the process down, so it stays in the
  session manager's driver and never leaks into the API, the workers or the CLI;
- `app/` (the API and the shared kit) imports neither `sessions` nor `workers`: they build on it, not the
  other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "sessions", "workers", "mostrador")
NEONIZE_DRIVER = ROOT / "sessions" / "drivers" / "neonize"


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, the source of `module`; relative imports are
    resolved against its package."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            # `from pkg import name` may import the submodule `pkg.name`: count both spellings.
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
    return found


def python_files() -> list[Path]:
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20, files  # the walk found the code (a wrong root would make every check pass)
    return files


def imports_of(path: Path) -> list[tuple[int, str]]:
    relative = path.relative_to(ROOT).with_suffix("")
    is_package = relative.name == "__init__"
    parts = relative.parts[:-1] if is_package else relative.parts
    return imported_modules(path.read_text(), ".".join(parts), is_package=is_package)


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """`path:line imports module`, once per offending line."""
    found: dict[str, str] = {}
    for path in files:
        for line, name in imports_of(path):
            if name.split(".")[0] in forbidden:
                found.setdefault(f"{path.relative_to(ROOT)}:{line}", name)
    return [f"{where} imports {name}" for where, name in found.items()]


def test_only_the_neonize_driver_imports_neonize() -> None:
    files = python_files()
    outside = [path for path in files if not path.is_relative_to(NEONIZE_DRIVER)]
    assert violations(outside, ("neonize",)) == []
    # The check sees imports where they are: the driver package itself does import neonize.
    inside = [path for path in files if path.is_relative_to(NEONIZE_DRIVER)]
    assert violations(inside, ("neonize",))


def test_app_imports_neither_sessions_nor_workers() -> None:
    app = [path for path in python_files() if path.is_relative_to(ROOT / "app")]
    assert violations(app, ("sessions", "workers")) == []
    sessions = [path for path in python_files() if path.is_relative_to(ROOT / "sessions")]
    assert violations(sessions, ("sessions",))  # the same check does see such imports


@pytest.mark.parametrize(
    ("source", "module", "is_package", "wanted"),
    [
        ("import neonize.proto", "app.x", False, "neonize.proto"),
        ("from neonize.exc import NeonizeError", "app.x", False, "neonize.exc.NeonizeError"),
        ("from ..sessions import manager", "app.kit.x", False, "app.sessions.manager"),
        ("from .. import config", "app.kit.x", False, "app.config"),
        ("from . import runtime", "sessions.drivers.neonize", True, "sessions.drivers.neonize.runtime"),
        ("if TYPE_CHECKING:\n    import workers.broker", "app.x", False, "workers.broker"),
    ],
)
def test_imports_are_read_with_relative_ones_resolved(
    source: str, module: str, is_package: bool, wanted: str
) -> None:
    assert wanted in [name for _line, name in imported_modules(source, module, is_package=is_package)]
