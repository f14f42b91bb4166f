"""The `mostrador` command. This module is imported before anything else of the package (by `python -m
mostrador` and by the console script), so it refuses a Python that is too old before the rest of the code,
written for 3.11, fails on it with a traceback. Keep this file valid Python 3 of any version: no annotations
syntax, no f-strings."""

import sys

REQUIRED_PYTHON = (3, 11)  # keep in step with `requires-python` in pyproject.toml

if tuple(sys.version_info[:2]) < REQUIRED_PYTHON:
    needed, found = (".".join(str(part) for part in v[:2]) for v in (REQUIRED_PYTHON, sys.version_info))
    sys.stderr.write(
        "mostrador: Mostrador needs Python " + needed + " or newer, and " + sys.executable + " is Python "
    )
    sys.stderr.write(
        found + ": install a newer Python and run Mostrador with it (PYTHON=python3.12 ./dev run)\n"
    )
    sys.exit(1)
