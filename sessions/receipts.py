"""Delivery and read receipts of sent messages, group-committed (app/kit/batching.py): the receipts of every
store that arrive while one UPDATE is in flight share the next one."""

from __future__ import annotations

import asyncio
import uuid

from app.kit import metrics
from app.kit.batching import GroupCommit
from app.kit.db import AsyncSessionMaker, single_statement
from sessions.repository import OUTBOUND_RANK, SessionsRepository


class ReceiptRecorder:
    def __init__(self, sessionmaker: AsyncSessionMaker) -> None:
        self.sessionmaker = sessionmaker
        self._commits: GroupCommit[tuple[uuid.UUID, str, str], None] = GroupCommit(self._apply_batch)

    async def record(self, store_id: uuid.UUID, wa_ids: list[str], kind: str) -> None:
        """Move the store's sent messages with these WhatsApp ids forward to `kind` (never back: a late
        `delivered` leaves `read` alone). Returns once committed; raises if it could not be."""
        if kind not in OUTBOUND_RANK or not wa_ids:
            return
        futures = [self._commits.submit_nowait((store_id, wa_id, kind)) for wa_id in wa_ids]
        for result in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    def close(self) -> None:
        self._commits.close()

    async def _apply_batch(self, batch: list[tuple[uuid.UUID, str, str]]) -> list[None]:
        async with single_statement(self.sessionmaker) as session:
            await SessionsRepository(session).apply_receipts(batch)
        kinds = [kind for _, _, kind in batch]
        metrics.count_messages("out", "delivered", kinds.count("delivered"))
        metrics.count_messages("out", "read", kinds.count("read"))
        return [None] * len(batch)
