from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.kit.pagination import Keyset
from app.kit.repository import TenantScopedRepository
from app.messages.chats import PHONE_SERVER
from app.models import Conversation, Direction, Message, MessageStatus, Store
from app.models.message import SEARCH_VECTOR

# The JID a message's chat is shown by (`chat_name` makes it E.164): the phone JID where known, which is the
# conversation's key or, for a chat first seen under its LID, its other identifier (`shown_jid` in Python).
SHOWN_JID: ColumnElement[str] = case(
    (Conversation.alt_jid.like("%@" + PHONE_SERVER), Conversation.alt_jid), else_=Conversation.chat_jid
)

# Newest first on (created_at, id): the index `ix_messages_store_created` (store_id, created_at, id) that the
# inbound insert already maintains serves it, and `ix_messages_conversation_created` serves a chat's history.
# `id` breaks ties (a batch inserted in one transaction shares its created_at) and makes the order total.
MESSAGE_ORDER = Keyset((Message.created_at, Message.id), descending=True)
# Oldest first, for the export.
EXPORT_ORDER = (Message.created_at.asc(), Message.id.asc())

_SPANISH: ColumnElement[Any] = literal_column("'spanish'::regconfig")


@dataclass(frozen=True)
class MessageFilters:
    chat_jid: str | None = None
    direction: str | None = None
    status: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None

    def clauses(self, store_id: uuid.UUID) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [Message.store_id == store_id]
        if self.chat_jid is not None:
            # The customer's conversation, found by either of its identifiers (phone JID or LID; the unique
            # (store, chat_jid) index and `ix_conversations_store_alt_jid`); the chat's own index then serves
            # the page. An alias: the statement joins `conversations` too, and this must not correlate to that.
            chat = aliased(Conversation)
            conversation = select(chat.id).where(
                chat.store_id == store_id, or_(chat.chat_jid == self.chat_jid, chat.alt_jid == self.chat_jid)
            )
            clauses.append(Message.conversation_id.in_(conversation))
        if self.direction is not None:
            clauses.append(Message.direction == self.direction)
        if self.status is not None:
            clauses.append(Message.status == self.status)
        if self.type is not None:
            clauses.append(Message.type == self.type)
        if self.since is not None:
            clauses.append(Message.created_at >= self.since)
        if self.until is not None:
            clauses.append(Message.created_at < self.until)
        if self.q is not None:
            query = func.websearch_to_tsquery(_SPANISH, func.mostrador_unaccent(self.q))
            clauses += [Message.text.is_not(None), SEARCH_VECTOR.bool_op("@@")(query)]
        return clauses


@dataclass(frozen=True)
class DayRow:
    day: Any
    inbound: int
    outbound: int


@dataclass(frozen=True)
class StatsRows:
    days: list[DayRow]
    active_conversations: int
    replied: int
    median_seconds: float | None
    p95_seconds: float | None
    failed_sends: int


class MessageRepository(TenantScopedRepository[Message]):
    """Messages, scoped to one tenant through their store."""

    model = Message

    def get_readable_statement(self) -> Select[Message]:
        return (
            self.get_base_statement()
            .join(Store, Store.id == Message.store_id)
            .where(Store.tenant_id == self.tenant_id)
        )

    def _with_chat(self) -> Select[Message, str]:
        return (
            self.get_readable_statement()
            .add_columns(SHOWN_JID)
            .join(Conversation, Conversation.id == Message.conversation_id)
        )

    def page_statement(
        self, store_id: uuid.UUID, filters: MessageFilters, *, limit: int, cursor: str | None
    ) -> Select[Message, str]:
        statement = self._with_chat().where(*filters.clauses(store_id))
        return MESSAGE_ORDER.apply(statement, limit=limit, cursor=cursor)

    async def list_page(
        self, store_id: uuid.UUID, filters: MessageFilters, *, limit: int, cursor: str | None
    ) -> tuple[list[tuple[Message, str]], str | None]:
        """Each message with the JID its chat is shown by (`SHOWN_JID`), newest first."""
        statement = self.page_statement(store_id, filters, limit=limit, cursor=cursor)
        rows = [(row[0], row[1]) for row in await self.session.execute(statement)]
        return MESSAGE_ORDER.page(rows, limit=limit, key=lambda row: (row[0].created_at, row[0].id))

    async def get(self, store_id: uuid.UUID, message_id: uuid.UUID) -> tuple[Message, str] | None:
        statement = self._with_chat().where(Message.store_id == store_id, Message.id == message_id)
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1])

    def export_statement(self, store_id: uuid.UUID, filters: MessageFilters) -> Select[Message, str]:
        """Oldest first; run it with `session.stream()` (a server-side cursor) to hold one batch at a time."""
        return self._with_chat().where(*filters.clauses(store_id)).order_by(*EXPORT_ORDER)

    async def stats(self, store_id: uuid.UUID, since: datetime, until: datetime) -> StatsRows:
        params = {"store_id": store_id, "since": since, "until": until}
        days = [
            DayRow(row.day, row.inbound, row.outbound)
            for row in await self.session.execute(_STATS_DAYS, params)
        ]
        totals = (await self.session.execute(_STATS_TOTALS, params)).one()
        replies = (await self.session.execute(_STATS_REPLIES, params)).one()
        return StatsRows(
            days=days,
            active_conversations=totals.active_conversations,
            failed_sends=totals.failed_sends,
            replied=replies.replied,
            median_seconds=replies.median_seconds,
            p95_seconds=replies.p95_seconds,
        )


async def store_belongs_to(session: AsyncSession, store_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    """For the export's own session: the store is still the tenant's (checked by the request's session too)."""
    found = await session.scalar(select(Store.id).where(Store.id == store_id, Store.tenant_id == tenant_id))
    return found is not None


# Every query below reads one store's rows in [since, until) through `ix_messages_store_created`.
_STATS_DAYS = text(
    f"""
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) FILTER (WHERE direction = '{Direction.inbound.value}') AS inbound,
           count(*) FILTER (WHERE direction = '{Direction.outbound.value}') AS outbound
    FROM messages
    WHERE store_id = :store_id AND created_at >= :since AND created_at < :until
    GROUP BY day ORDER BY day
    """
)
_STATS_TOTALS = text(
    f"""
    SELECT count(DISTINCT conversation_id) AS active_conversations,
           count(*) FILTER (WHERE direction = '{Direction.outbound.value}'
                            AND status = '{MessageStatus.failed.value}') AS failed_sends
    FROM messages
    WHERE store_id = :store_id AND created_at >= :since AND created_at < :until
    """
)
# A customer's message of the period and the store's first reply to it (`reply_to_id`), whenever it came.
_STATS_REPLIES = text(
    f"""
    SELECT count(*) AS replied,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median_seconds,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95_seconds
    FROM (
        SELECT extract(epoch FROM min(reply.created_at) - inbound.created_at)::float8 AS seconds
        FROM messages AS inbound
        JOIN messages AS reply
          ON reply.reply_to_id = inbound.id AND reply.store_id = inbound.store_id
         AND reply.direction = '{Direction.outbound.value}'
        WHERE inbound.store_id = :store_id AND inbound.direction = '{Direction.inbound.value}'
          AND inbound.created_at >= :since AND inbound.created_at < :until
        GROUP BY inbound.id, inbound.created_at
    ) AS replied
    """
)
