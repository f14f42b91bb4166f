"""A store's status: written in PostgreSQL, then announced on the store's channel (the API's SSE listens)."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from app.contracts import status_event, store_events_channel
from app.kit.db import AsyncSessionMaker, single_statement
from app.models import StoreStatus
from sessions.repository import SessionsRepository


class StatusWriter:
    def __init__(self, sessionmaker: AsyncSessionMaker, redis: Redis) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis

    async def write(
        self, store_id: uuid.UUID, status: StoreStatus, reason: str | None, **values: object
    ) -> None:
        """Raises if PostgreSQL or Redis cannot be reached; writing the same status again is harmless."""
        async with single_statement(self.sessionmaker) as session:  # one UPDATE: atomic by itself
            phone = await SessionsRepository(session).set_status(store_id, status, reason, **values)
        payload = status_event(status.value, phone_number=phone, reason=reason)
        await self.redis.publish(store_events_channel(store_id), payload)
