"""The `mostrador` command: one entry point for every process."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from app.config import LogLevel, Settings, SettingsError, describe_error, get_settings
from app.kit.logging import configure_logging

app = typer.Typer(
    help="Mostrador: put a store's WhatsApp number to work. Each sub-command is one process; `run` is all of "
    "them together.",
    no_args_is_help=True,
    add_completion=False,
)


@dataclass
class _Options:
    debug: bool = False


_options = _Options()


_DEBUG_HELP = (
    "Log at DEBUG level and show a traceback when the start fails (as does MOSTRADOR_LOG_LEVEL=DEBUG)."
)


def _set_debug(debug: bool) -> None:
    if debug:
        _options.debug = True
        os.environ["MOSTRADOR_LOG_LEVEL"] = LogLevel.debug.value  # for this process and its children


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help=_DEBUG_HELP)] = False,
) -> None:
    _set_debug(debug)


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValueError as exc:
        if _options.debug:
            raise
        typer.echo(f"configuration error: {describe_error(exc)}", err=True)
        raise typer.Exit(2) from exc
    _options.debug = _options.debug or settings.log_level is LogLevel.debug
    configure_logging(level=settings.log_level.value, json=settings.is_production)
    return settings


def _require_urls(settings: Settings) -> tuple[str, str]:
    try:
        return settings.require_urls()
    except SettingsError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


@contextlib.contextmanager
def _plain_failures() -> Iterator[None]:
    """A start that fails for a reason the operator can fix ends with its message and exit code 1; the
    traceback, which helps only whoever debugs Mostrador itself, is shown with --debug."""
    from mostrador.embedded import EmbeddedServerError
    from mostrador.preflight import StartupError

    try:
        yield
    except (StartupError, EmbeddedServerError, SettingsError) as exc:
        if _options.debug:
            raise
        typer.echo(f"mostrador: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        from alembic.util.exc import CommandError  # imported late: importing alembic costs seconds

        if _options.debug or not isinstance(exc, CommandError):
            raise
        # Alembic's own plain message, e.g. a database migrated by a newer Mostrador ("Can't locate revision").
        typer.echo(f"mostrador: the database could not be migrated: {exc}", err=True)
        raise typer.Exit(1) from None


def _check_servers(database_url: str | None, redis_url: str | None) -> None:
    from mostrador.preflight import check_servers

    check_servers(database_url, redis_url)


@app.command()
def run(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where embedded data lives (default: MOSTRADOR_DATA_DIR or ./.mostrador)"),
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="API port (default: MOSTRADOR_PORT or 8000)")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help=_DEBUG_HELP + " Also `mostrador --debug run`.")
    ] = False,
) -> None:
    """All in one: API, session manager and worker, on embedded PostgreSQL and Redis unless DATABASE_URL /
    REDIS_URL are set. Migrates the database on start. Ctrl-C stops everything."""
    _set_debug(debug)  # here too, so that `./dev run --debug` works
    settings = _settings()
    from mostrador.allinone import run_all  # after the logging set-up: its imports may warn (JSON lines too)

    updates: dict[str, object] = {}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    if port is not None:
        updates["port"] = port
    settings = settings.model_copy(update=updates)
    with _plain_failures():
        run_all(settings)


@app.command()
def api() -> None:
    """The HTTP API (FastAPI under uvicorn) on MOSTRADOR_HOST:MOSTRADOR_PORT. Needs DATABASE_URL and REDIS_URL."""
    from mostrador.preflight import StartupError, bind_api_socket

    settings = _settings()
    with _plain_failures():
        sock = bind_api_socket(settings.host, settings.port)
        with contextlib.closing(sock):
            _check_servers(*_require_urls(settings))
            import uvicorn

            from app.main import create_app
            from mostrador.server import Server

            config = uvicorn.Config(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_config=None,
                # Our access log names the route template, never the raw path (app/kit/http_metrics.py).
                access_log=False,
                # SIGTERM: requests in flight (server-sent event streams too) get this long, then end.
                timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
            )
            server = Server(config)  # exits 0 after a SIGTERM (mostrador/server.py)
            server.run(sockets=[sock])
            if not server.started:
                raise StartupError("the API did not start: see the lines above")


@app.command()
def sessions() -> None:
    """The session manager: holds the stores' WhatsApp connections. Needs DATABASE_URL and REDIS_URL. Serves
    /metrics, /healthz and /readyz on MOSTRADOR_OPS_HOST:MOSTRADOR_OPS_PORT (9100)."""
    settings = _settings()
    with _plain_failures():
        _check_servers(*_require_urls(settings))
    from sessions.main import main as sessions_main

    sessions_main(settings)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Messages handled at once across chats (default: MOSTRADOR_WORKER_CONCURRENCY)"),
    ] = None,
) -> None:
    """The message worker: runs the stores' bots on their message streams, in order per chat. Needs
    DATABASE_URL and REDIS_URL. SIGTERM drains the lanes (bounded) and hands the stores over. Serves /metrics,
    /healthz and /readyz on MOSTRADOR_OPS_HOST:MOSTRADOR_OPS_PORT (9100)."""
    settings = _settings()
    with _plain_failures():
        _check_servers(*_require_urls(settings))
    from workers.main import main as worker_main

    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    worker_main(settings)


dlq = typer.Typer(help="The stores' dead-letter streams: messages whose handling failed every attempt.")
app.add_typer(dlq, name="dlq")


@dlq.command("list")
def dlq_list(
    store_id: Annotated[str, typer.Argument(help="The store's id")],
    limit: Annotated[int, typer.Option(help="At most this many, oldest first")] = 100,
) -> None:
    """Print a store's dead letters as JSON lines: entry id, message id, error, when."""
    import asyncio
    import json
    import uuid

    from app.kit.redis import create_redis
    from workers.dlq import list_dead_letters

    _, redis_url = _require_urls(_settings())
    with _plain_failures():
        _check_servers(None, redis_url)

    async def run() -> None:
        redis = create_redis(redis_url)
        try:
            for letter in await list_dead_letters(redis, uuid.UUID(store_id), limit=limit):
                typer.echo(json.dumps({k: v for k, v in letter.__dict__.items() if k != "data"}))
        finally:
            await redis.aclose()

    asyncio.run(run())


@dlq.command("replay")
def dlq_replay(
    store_id: Annotated[str, typer.Argument(help="The store's id")],
    entry_ids: Annotated[
        list[str] | None, typer.Argument(help="Dead-letter entry ids (default: all)")
    ] = None,
) -> None:
    """Put dead letters back on the store's stream, oldest first, to be handled again."""
    import asyncio
    import uuid

    from app.kit.db import create_engine, create_sessionmaker
    from app.kit.redis import create_redis
    from workers.dlq import replay_dead_letters

    database_url, redis_url = _require_urls(_settings())
    with _plain_failures():
        _check_servers(database_url, redis_url)

    async def run() -> int:
        engine, redis = create_engine(database_url, pool_size=1), create_redis(redis_url)
        try:
            return await replay_dead_letters(
                redis, create_sessionmaker(engine), uuid.UUID(store_id), entry_ids or None
            )
        finally:
            await redis.aclose()
            await engine.dispose()

    typer.echo(f"replayed {asyncio.run(run())} message(s)")


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
    with _plain_failures():
        _check_servers(settings.database_url, None)
        upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


def main() -> None:  # pragma: no cover - console entry for `python -m mostrador`
    sys.exit(app())
