"""What the API process holds for its lifetime, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.kit.db import AsyncSessionMaker


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: AsyncSessionMaker
    redis: Redis
    # The simulated WhatsApp network's Redis (the same client unless MOSTRADOR_SIM_REDIS_URL is set).
    sim_redis: Redis
