"""The API process: `create_app(settings)` builds the FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.api_keys.endpoints import router as api_keys_router
from app.auth.endpoints import router as auth_router
from app.bots.endpoints import router as bots_router
from app.changes.endpoints import router as changes_router
from app.config import Settings, WhatsAppDriver
from app.conversations.endpoints import router as conversations_router
from app.health.endpoints import router as health_router
from app.kit import metrics
from app.kit.db import create_engine, create_sessionmaker
from app.kit.errors import install_error_handlers
from app.kit.http_metrics import RequestMetrics
from app.kit.nul import RejectNulMiddleware
from app.kit.openapi import install_openapi
from app.kit.redis import create_redis
from app.media.endpoints import router as media_router
from app.messages.endpoints import router as messages_router
from app.onboarding.endpoints import links_router as onboarding_links_router
from app.onboarding.endpoints import router as onboarding_router
from app.orders.endpoints import router as orders_router
from app.sending.endpoints import router as sending_router
from app.sim.endpoints import router as sim_router
from app.state import AppState
from app.stores.endpoints import router as stores_router
from app.users.endpoints import router as users_router
from app.web.endpoints import STATIC_DIR
from app.web.endpoints import router as web_router
from app.webhooks.endpoints import router as webhooks_router


def create_app(settings: Settings) -> FastAPI:
    database_url, redis_url = settings.require_urls()
    settings = settings.with_dev_secret()  # tokens and key hashes need a secret, even on a laptop

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, application_name="mostrador-api")
        redis = create_redis(redis_url)
        sim_redis = create_redis(settings.sim_redis_url) if settings.sim_redis_url else redis
        app.state.mostrador = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            redis=redis,
            sim_redis=sim_redis,
        )
        try:
            yield
        finally:
            await app.state.mostrador.changes_waiter.close()
            if sim_redis is not redis:
                await sim_redis.aclose()
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Mostrador",
        version="0.1.0",
        description="Multi-tenant WhatsApp backend for stores: link a number, let the store's bot answer.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    metrics.register("api")
    app.add_middleware(RequestMetrics)
    install_openapi(app)  # the error shape, 400/401/403/404 on every route that can answer them
    app.add_middleware(RejectNulMiddleware)  # PostgreSQL cannot store U+0000: refused in any input
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(api_keys_router)
    app.include_router(stores_router)
    app.include_router(bots_router)
    app.include_router(conversations_router)
    app.include_router(messages_router)
    app.include_router(media_router)
    app.include_router(sending_router)
    app.include_router(changes_router)
    app.include_router(orders_router)
    app.include_router(onboarding_links_router)
    app.include_router(onboarding_router)
    app.include_router(webhooks_router)
    if settings.whatsapp_driver is WhatsAppDriver.simulator:
        # The simulator's controls would let anyone fake customers and phones: never on the real network.
        app.include_router(sim_router)
    # The store owner's page: HTML routes outside the OpenAPI document, and its CSS/JS.
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
