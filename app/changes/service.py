"""The changes feed: a store's change log (`events`) as pages a client resumes from, with an optional long-poll."""

from __future__ import annotations

import asyncio
import functools
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.changes.repository import ChangeRow, ChangesRepository
from app.changes.schemas import ChangeKind, ChangePage, ChangeRead, ConversationChange, StoreChange
from app.changes.waiter import ChangesWaiter
from app.events.repository import START, EventPosition, horizon, position_of
from app.kit import unit_of_work
from app.kit.pagination import InvalidCursor
from app.kit.sealing import Sealer
from app.messages.schemas import MessageRead
from app.models import EventKind, Tenant
from app.stores.service import store as store_service

NOW = "now"  # `after=now`: only what commits from now on (never a cursor)

# A cursor is a sealed (xid, id) bound to its store (app/kit/sealing.py): the raw numbers count every
# tenant's changes on the server, and a cursor of another store or endpoint, or a forged one, is a 422.
_POSITION = struct.Struct(">QQ")


@functools.lru_cache(maxsize=4)
def _sealer(secret_key: str) -> Sealer:
    return Sealer(secret_key, "changes cursor")


@dataclass(frozen=True)
class Cursors:
    secret_key: str
    store_id: uuid.UUID

    def encode(self, position: EventPosition) -> str:
        return _sealer(self.secret_key).seal(
            _POSITION.pack(position.xid, position.id), context=self.store_id.bytes
        )

    def decode(self, cursor: str | None) -> EventPosition:
        if cursor is None:
            return START
        try:
            xid, event_id = _POSITION.unpack(
                _sealer(self.secret_key).unseal(cursor, context=self.store_id.bytes)
            )
        except (ValueError, struct.error) as exc:
            raise InvalidCursor() from exc
        return EventPosition(xid, event_id)


class ChangesService:
    async def page(
        self,
        session: AsyncSession,
        waiter: ChangesWaiter,
        *,
        tenant: Tenant,
        secret_key: str,
        store_id: str,
        after: str | None,
        limit: int,
        kinds: Sequence[str] | None,
        wait: float,
    ) -> ChangePage:
        """The changes after `after`; with `wait`, an empty page waits up to that many seconds for one."""
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        cursors = Cursors(secret_key, store.id)
        # `now`: from the current end of the log (every transaction below the horizon has ended).
        position = EventPosition(await horizon(session), 0) if after == NOW else cursors.decode(after)
        page, position = await self.read(session, tenant, cursors, position, limit, kinds)
        if page or wait <= 0:
            return ChangePage(items=page, next_cursor=cursors.encode(position))
        # Nothing yet: end this (read-only) transaction so that the wait holds no database connection; each
        # later read is a short transaction of its own, committed by the request's dependency at the end.
        await unit_of_work.commit(session)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (remaining := deadline - loop.time()) > 0:
            if not await waiter.wait(store.id, position, kinds, remaining):
                break
            page, position = await self.read(session, tenant, cursors, position, limit, kinds)
            if page:
                break
            await unit_of_work.commit(session)
        return ChangePage(items=page, next_cursor=cursors.encode(position))

    async def read(
        self,
        session: AsyncSession,
        tenant: Tenant,
        cursors: Cursors,
        after: EventPosition,
        limit: int,
        kinds: Sequence[str] | None,
    ) -> tuple[list[ChangeRead], EventPosition]:
        """A page and the position after it: its last event's, or, when the page is not full, the horizon
        (everything of the store below it was read), so an idle store's cursor moves on with the log."""
        rows, horizon = await ChangesRepository(session, tenant.id).page(
            cursors.store_id, after, limit=limit, kinds=kinds
        )
        position = position_of(rows[-1].event) if rows else after
        if len(rows) < limit:
            position = max(position, EventPosition(horizon, 0))
        items = [_item(row, cursors) for row in rows]
        return [item for item in items if item is not None], position


def _item(row: ChangeRow, cursors: Cursors) -> ChangeRead | None:
    event = row.event
    message = store = conversation = None
    if event.message_id is not None:
        if (
            row.message is None or row.chat_jid is None
        ):  # deleted since (only a race with the delete sees this)
            return None
        message = MessageRead.of(row.message, row.chat_jid)
    elif event.kind == EventKind.store_status:
        store = StoreChange(id=event.store_id, status=event.status or "", reason=event.error)
    elif event.kind == EventKind.conversation_bot_paused and event.conversation_id is not None:
        conversation = ConversationChange(id=event.conversation_id, bot_paused=event.status == "paused")
    return ChangeRead(
        cursor=cursors.encode(position_of(event)),
        kind=cast(ChangeKind, event.kind),
        at=event.created_at,
        status=event.status,
        error=event.error,
        message=message,
        store=store,
        conversation=conversation,
    )


changes = ChangesService()
