"""`mostrador run`: embedded servers (when no URLs are given), migrations, then the processes together."""

from __future__ import annotations

import time

import structlog
import uvicorn

from app.config import Settings
from app.kit.migrations import upgrade
from app.main import create_app
from mostrador.embedded import embedded_servers

log = structlog.get_logger(__name__)


def run_all(settings: Settings) -> None:
    started = time.monotonic()
    settings = settings.with_dev_secret()
    with embedded_servers(
        settings.data_dir, database_url=settings.database_url, redis_url=settings.redis_url
    ) as (database_url, redis_url):
        settings = settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
        upgrade(database_url)
        log.info("database migrated", seconds=round(time.monotonic() - started, 2))
        config = uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_config=None, lifespan="on"
        )
        server = uvicorn.Server(config)
        log.info(
            "mostrador starting",
            url=f"http://{settings.host}:{settings.port}",
            docs=f"http://{settings.host}:{settings.port}/docs",
            driver=settings.whatsapp_driver.value,
        )
        server.run()
    log.info("mostrador stopped")
