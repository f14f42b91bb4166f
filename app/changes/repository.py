"""The changes feed's one query: a page of the store's change log with each event's message, in one round trip."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.repository import EventPosition, page_after_parts
from app.messages.repository import SHOWN_JID
from app.models import Conversation, Event, Message, Store


@dataclass(frozen=True)
class ChangeRow:
    event: Event
    message: Message | None  # for `message.*` events (None only if deleted since: its events go with it)
    chat_jid: str | None  # the JID the message's chat is shown by


class ChangesRepository:
    """Reads go through the store's tenant (the log's rows carry the store, the store its tenant)."""

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def page_statement(
        self, store_id: uuid.UUID, after: EventPosition, *, limit: int, kinds: Sequence[str] | None
    ) -> Select[int, Event, Message, str]:
        """`app/events/repository.page_after_statement`'s page (same order, same horizon read in the same statement),
        joined to each event's message and its chat: (horizon, event, message, shown JID) rows, one row of
        nulls but the horizon when the page is empty."""
        tenant_stores = select(Store.id).where(Store.tenant_id == self.tenant_id)
        bound, page, event = page_after_parts(
            store_id, after, limit=limit, kinds=kinds, scope=Event.store_id.in_(tenant_stores)
        )
        return (
            select(bound.c.horizon, event, Message, SHOWN_JID)
            .select_from(bound)
            .outerjoin(page, true())
            .outerjoin(Message, and_(Message.id == event.message_id, Message.store_id == store_id))
            .outerjoin(Conversation, Conversation.id == Message.conversation_id)
            .order_by(event.xid, event.id)
        )

    async def page(
        self, store_id: uuid.UUID, after: EventPosition, *, limit: int, kinds: Sequence[str] | None
    ) -> tuple[list[ChangeRow], int]:
        """The page's rows in log order, and the horizon that bounded it (see `page_after_statement`)."""
        result = (
            await self.session.execute(self.page_statement(store_id, after, limit=limit, kinds=kinds))
        ).all()
        rows = [ChangeRow(row[1], row[2], row[3]) for row in result if row[1] is not None]
        return rows, int(result[0][0]) if result else 0
