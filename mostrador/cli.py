"""The `mostrador` command: one entry point for every process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.config import Settings, SettingsError, describe_error, get_settings
from app.kit.logging import configure_logging

app = typer.Typer(
    help="Mostrador: put a store's WhatsApp number to work. Each sub-command is one process; `run` is all of "
    "them together.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValueError as exc:
        typer.echo(f"configuration error: {describe_error(exc)}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(level=settings.log_level.value, json=settings.is_production)
    return settings


def _require_urls(settings: Settings) -> tuple[str, str]:
    try:
        return settings.require_urls()
    except SettingsError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def run(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where embedded data lives (default: MOSTRADOR_DATA_DIR or ./.mostrador)"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="API port (default: MOSTRADOR_PORT or 8000)")] = None,
) -> None:
    """All in one: API, session manager and worker, on embedded PostgreSQL and Redis unless DATABASE_URL /
    REDIS_URL are set. Migrates the database on start. Ctrl-C stops everything."""
    from mostrador.allinone import run_all

    settings = _settings()
    updates: dict[str, object] = {}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    if port is not None:
        updates["port"] = port
    settings = settings.model_copy(update=updates)
    run_all(settings)


@app.command()
def api() -> None:
    """The HTTP API (FastAPI under uvicorn) on MOSTRADOR_HOST:MOSTRADOR_PORT. Needs DATABASE_URL and REDIS_URL."""
    import uvicorn

    from app.main import create_app

    settings = _settings()
    _require_urls(settings)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


@app.command()
def sessions() -> None:
    """The session manager: holds the stores' WhatsApp connections. Needs DATABASE_URL and REDIS_URL."""
    from sessions.main import main as sessions_main

    settings = _settings()
    _require_urls(settings)
    sessions_main(settings)


@app.command()
def worker() -> None:
    """The message worker: runs the stores' bots on their message streams. Needs DATABASE_URL and REDIS_URL."""
    settings = _settings()
    _require_urls(settings)
    typer.echo("the message worker is not built yet (issue 4)", err=True)
    raise typer.Exit(3)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Upgrade the database schema (Alembic) to REVISION. Needs DATABASE_URL."""
    from app.kit.migrations import upgrade

    settings = _settings()
    if not settings.database_url:
        typer.echo("configuration error: DATABASE_URL must be set for this command", err=True)
        raise typer.Exit(2)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


def main() -> None:  # pragma: no cover - console entry for `python -m mostrador`
    sys.exit(app())
