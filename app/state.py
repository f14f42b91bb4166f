"""What the API process holds for its lifetime, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.changes.waiter import ChangesWaiter
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
    # The changes feed's long-poll: one poller for every waiting request of this process.
    changes_waiter: ChangesWaiter = field(init=False)

    def __post_init__(self) -> None:
        self.changes_waiter = ChangesWaiter(
            self.sessionmaker, interval_seconds=self.settings.changes_poll_interval_ms / 1000
        )
