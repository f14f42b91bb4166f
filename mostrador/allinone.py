"""`mostrador run`: embedded servers (when no URLs are given), migrations, then the processes together."""

from __future__ import annotations

import contextlib
import math
import socket
import time

import structlog
import uvicorn

from app.config import Settings
from app.kit.migrations import upgrade
from app.main import create_app
from mostrador.embedded import embedded_servers
from mostrador.preflight import bind_api_socket, check_data_dir, check_servers
from mostrador.server import Server
from mostrador.supervisor import Supervisor, child_env

log = structlog.get_logger(__name__)


def run_all(settings: Settings) -> None:
    """Check what the operator can get wrong first (port, data dir, given servers), each with a plain message
    (`mostrador/preflight.py`), then start the embedded servers, migrate, and run until SIGINT/SIGTERM."""
    started = time.monotonic()
    sock = bind_api_socket(settings.host, settings.port)
    with contextlib.closing(sock):
        if not (settings.database_url and settings.redis_url and settings.secret_key):
            check_data_dir(settings.data_dir)
        check_servers(settings.database_url, settings.redis_url)
        settings = settings.with_dev_secret()
        with embedded_servers(
            settings.data_dir, database_url=settings.database_url, redis_url=settings.redis_url
        ) as (database_url, redis_url):
            settings = settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
            upgrade(database_url)
            log.info("database migrated", seconds=round(time.monotonic() - started, 2))
            _serve(settings, sock, database_url, redis_url)
    log.info("mostrador stopped")


def ops_ports(port: int) -> tuple[int, int]:
    """The children's listeners (`/metrics`, `/healthz`, `/readyz`): the session manager's on
    MOSTRADOR_OPS_PORT, the worker's on the next port; 0: none."""
    return port, (port + 1 if 0 < port < 65535 else 0)


def _serve(settings: Settings, sock: socket.socket, database_url: str, redis_url: str) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="on",
        access_log=False,  # ours names the route template, never the raw path (app/kit/http_metrics.py)
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    server = Server(config)
    # Each child stops within the grace; a child that does not is killed a little later.
    children = Supervisor(
        child_env(database_url, redis_url, settings.secret_key),
        stop_timeout=settings.shutdown_grace_seconds + 10,
    )
    sessions_port, worker_port = ops_ports(settings.ops_port)
    children.add("sessions", "sessions", env={"MOSTRADOR_OPS_PORT": str(sessions_port)})
    children.add("worker", "worker", env={"MOSTRADOR_OPS_PORT": str(worker_port)})
    children.start()
    log.info(
        "mostrador starting",
        url=f"http://{settings.host}:{settings.port}",
        docs=f"http://{settings.host}:{settings.port}/docs",
        driver=settings.whatsapp_driver.value,
        metrics=f"http://{settings.host}:{settings.port}/metrics",
        sessions_ops=f"http://{settings.ops_host}:{sessions_port}" if sessions_port else None,
        worker_ops=f"http://{settings.ops_host}:{worker_port}" if worker_port else None,
    )
    try:
        server.run(sockets=[sock])
    finally:
        children.stop()
