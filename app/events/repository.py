"""Reading the change log (`events`) in an order that a resuming reader can trust.

A sequence or identity assigned at insert is not commit order: transaction A takes id 10, B takes id 11, B
commits first, a reader sees 11 and moves its cursor past it, then A commits 10 behind the cursor and the
reader never sees it. So rows are read in (xid, id) order (the writing transaction's id, then the row's) and
only below the *visibility horizon*: the oldest transaction id still running (`pg_snapshot_xmin` of the
reader's snapshot). Every transaction below the horizon has ended, so every row that will ever have such an
xid is visible now; a transaction that commits later has an xid at or above the horizon, hence after every
cursor handed out so far. A reader resuming from its last (xid, id) therefore never misses a row and never
sees one twice.

The price: a long-running writing transaction anywhere on the PostgreSQL server (even in another database)
holds the horizon back, delaying (never losing) what commits after it began.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnClause,
    ColumnElement,
    Select,
    literal_column,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import LateralFromClause

from app.models import Event

# The oldest transaction still running, as a bigint like `events.xid`.
HORIZON: ColumnClause[int] = literal_column(
    "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint", BigInteger()
)


@dataclass(frozen=True, order=True)
class EventPosition:
    """Where a reader stands in a store's log: after the row (xid, id). (0, 0) is the start."""

    xid: int = 0
    id: int = 0


START = EventPosition()


async def committed_after(
    session: AsyncSession,
    store_ids: Sequence[uuid.UUID],
    after: EventPosition = START,
    *,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> list[Event]:
    """Up to `limit` events of these stores after `after`, in (xid, id) order, all below the horizon.

    Callers must have checked that the stores belong to whoever asks (this reads any store)."""
    statement = (
        select(Event)
        .where(
            Event.store_id.in_(store_ids),
            tuple_(Event.xid, Event.id) > tuple_(after.xid, after.id),
            Event.xid < HORIZON,
        )
        .order_by(Event.xid, Event.id)
        .limit(limit)
    )
    if kinds is not None:
        statement = statement.where(Event.kind.in_(kinds))
    return list((await session.scalars(statement)).all())


def page_after_parts(
    store_id: uuid.UUID,
    after: EventPosition,
    *,
    limit: int,
    kinds: Sequence[str] | None,
    scope: ColumnElement[bool] | None = None,
) -> tuple[CTE, LateralFromClause, type[Event]]:
    """The pieces of `page_after_statement` (the horizon's CTE, the lateral page and the event alias), for a
    reader that joins more to the page (`app/changes/repository.py`); `scope` adds a condition on the events
    (the asking tenant's stores)."""
    bound = select(HORIZON.label("horizon")).cte("bound")
    rows = (
        select(Event)
        .where(
            Event.store_id == store_id,
            tuple_(Event.xid, Event.id) > tuple_(after.xid, after.id),
            Event.xid < bound.c.horizon,
        )
        .order_by(Event.xid, Event.id)
        .limit(limit)
    )
    if scope is not None:
        rows = rows.where(scope)
    if kinds is not None:
        rows = rows.where(Event.kind.in_(kinds))
    page = rows.subquery().lateral("page")
    return bound, page, aliased(Event, page)


def page_after_statement(
    store_id: uuid.UUID, after: EventPosition, *, limit: int, kinds: Sequence[str] | None
) -> Select[int, Event]:
    """`committed_after` for one store, with the horizon that bounds it read in the same statement (one
    snapshot): (horizon, event) rows, one row with a null event when the page is empty. Every event of the
    store after `after` and below that horizon is on the page when the page is not full, so a reader may then
    resume from (horizon, 0): a later statement's horizon could be higher and cover rows this one did not see,
    which is why it is not asked separately. Callers must have checked that the store belongs to whoever asks."""
    bound, page, event = page_after_parts(store_id, after, limit=limit, kinds=kinds)
    return select(bound.c.horizon, event).select_from(bound).outerjoin(page, true())


# For the long-poll's shared poller: which of the waiting readers (store, position, kinds) have an event to
# read now. One statement for all of them, one index probe (`ix_events_store_xid`) each.
_WAITERS_WITH_NEWS = text("""
SELECT w.n FROM unnest(
    CAST(:store_ids AS uuid[]), CAST(:xids AS bigint[]), CAST(:ids AS bigint[]), CAST(:kinds AS text[])
) WITH ORDINALITY AS w(store_id, xid, id, kinds, n)
WHERE EXISTS (
    SELECT 1 FROM events e
    WHERE e.store_id = w.store_id AND (e.xid, e.id) > (w.xid, w.id)
      AND e.xid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint
      AND (w.kinds IS NULL OR e.kind = ANY(string_to_array(w.kinds, ',')))
)
""")


async def waiters_with_news(
    session: AsyncSession, waiters: Sequence[tuple[uuid.UUID, EventPosition, Sequence[str] | None]]
) -> set[int]:
    """The indexes (0-based) of the (store, position, kinds) readers that have an event to read now."""
    if not waiters:
        return set()
    params = {
        "store_ids": [store_id for store_id, _, _ in waiters],
        "xids": [position.xid for _, position, _ in waiters],
        "ids": [position.id for _, position, _ in waiters],
        "kinds": [",".join(kinds) if kinds is not None else None for _, _, kinds in waiters],
    }
    return {int(row[0]) - 1 for row in await session.execute(_WAITERS_WITH_NEWS, params)}


async def history(session: AsyncSession, message_id: uuid.UUID) -> list[Event]:
    """A message's events (created, then each status change), oldest first."""
    statement = select(Event).where(Event.message_id == message_id).order_by(Event.id)
    return list((await session.scalars(statement)).all())


async def horizon(session: AsyncSession) -> int:
    """The current visibility horizon (see the module's docstring)."""
    return int(await session.scalar(select(HORIZON)) or 0)


def position_of(event: Event) -> EventPosition:
    return EventPosition(event.xid, event.id)


__all__ = [
    "HORIZON",
    "START",
    "EventPosition",
    "committed_after",
    "history",
    "horizon",
    "page_after_statement",
    "position_of",
    "waiters_with_news",
]
