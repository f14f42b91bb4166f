"""The changes feed: a store's change log (`events`) as pages a client resumes from, with an optional long-poll."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.changes.repository import ChangeRow, ChangesRepository
from app.changes.schemas import ChangeKind, ChangePage, ChangeRead, ConversationChange, StoreChange
from app.changes.waiter import ChangesWaiter
from app.events.repository import START, EventPosition, horizon, position_of
from app.kit import unit_of_work
from app.kit.pagination import InvalidCursor, decode_cursor, encode_cursor
from app.messages.schemas import MessageRead
from app.models import EventKind, Tenant
from app.stores.service import store as store_service

# A changes cursor says what it is, so another endpoint's cursor (or a forged one) is a 422, not a position.
CURSOR_TAG = "chg"
NOW = "now"  # `after=now`: only what commits from now on (never a cursor: it does not decode to JSON)


def encode_position(position: EventPosition) -> str:
    return encode_cursor([CURSOR_TAG, position.xid, position.id])


def decode_position(cursor: str | None) -> EventPosition:
    if cursor is None:
        return START
    tag, xid, event_id = decode_cursor(cursor, [str, int, int])
    if (
        tag != CURSOR_TAG
        or not isinstance(xid, int)
        or not isinstance(event_id, int)
        or xid < 0
        or event_id < 0
    ):
        raise InvalidCursor()
    return EventPosition(xid, event_id)


class ChangesService:
    async def page(
        self,
        session: AsyncSession,
        waiter: ChangesWaiter,
        *,
        tenant: Tenant,
        store_id: str,
        after: str | None,
        limit: int,
        kinds: Sequence[str] | None,
        wait: float,
    ) -> ChangePage:
        """The changes after `after`; with `wait`, an empty page waits up to that many seconds for one."""
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        # `now`: from the current end of the log (every transaction below the horizon has ended).
        position = EventPosition(await horizon(session), 0) if after == NOW else decode_position(after)
        page, position = await self.read(session, tenant, store.id, position, limit, kinds)
        if page or wait <= 0:
            return ChangePage(items=page, next_cursor=encode_position(position))
        # Nothing yet: end this (read-only) transaction so that the wait holds no database connection; each
        # later read is a short transaction of its own, committed by the request's dependency at the end.
        await unit_of_work.commit(session)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (remaining := deadline - loop.time()) > 0:
            if not await waiter.wait(store.id, position, kinds, remaining):
                break
            page, position = await self.read(session, tenant, store.id, position, limit, kinds)
            if page:
                break
            await unit_of_work.commit(session)
        return ChangePage(items=page, next_cursor=encode_position(position))

    async def read(
        self,
        session: AsyncSession,
        tenant: Tenant,
        store_id: uuid.UUID,
        after: EventPosition,
        limit: int,
        kinds: Sequence[str] | None,
    ) -> tuple[list[ChangeRead], EventPosition]:
        """A page and the position after it: its last event's, or, when the page is not full, the horizon
        (everything of the store below it was read), so an idle store's cursor moves on with the log."""
        rows, horizon = await ChangesRepository(session, tenant.id).page(
            store_id, after, limit=limit, kinds=kinds
        )
        position = position_of(rows[-1].event) if rows else after
        if len(rows) < limit:
            position = max(position, EventPosition(horizon, 0))
        items = [_item(row) for row in rows]
        return [item for item in items if item is not None], position


def _item(row: ChangeRow) -> ChangeRead | None:
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
        cursor=encode_position(position_of(event)),
        kind=cast(ChangeKind, event.kind),
        at=event.created_at,
        status=event.status,
        error=event.error,
        message=message,
        store=store,
        conversation=conversation,
    )


changes = ChangesService()
