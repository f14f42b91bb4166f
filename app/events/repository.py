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

from sqlalchemy import BigInteger, ColumnClause, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

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


async def history(session: AsyncSession, message_id: uuid.UUID) -> list[Event]:
    """A message's events (created, then each status change), oldest first."""
    statement = select(Event).where(Event.message_id == message_id).order_by(Event.id)
    return list((await session.scalars(statement)).all())


async def horizon(session: AsyncSession) -> int:
    """The current visibility horizon (see the module's docstring)."""
    return int(await session.scalar(select(HORIZON)) or 0)


def position_of(event: Event) -> EventPosition:
    return EventPosition(event.xid, event.id)


__all__ = ["HORIZON", "START", "EventPosition", "committed_after", "history", "horizon", "position_of"]
