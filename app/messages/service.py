"""Reading a store's history. Writes belong to the session manager (inbound) and the worker (replies)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Literal

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import messages_dlq
from app.events import repository as events
from app.kit.db import AsyncSessionMaker
from app.messages.errors import MessageNotFound
from app.messages.repository import MessageFilters, MessageRepository, store_belongs_to
from app.messages.schemas import (
    DayCount,
    MessageDetail,
    MessagePage,
    MessageRead,
    ReplyTimes,
    StatusStep,
    StoreStats,
)
from app.models import Message, Tenant
from app.stores.service import store as store_service

ExportFormat = Literal["ndjson", "csv"]
EXPORT_BATCH = 1000  # rows fetched per round trip of the server-side cursor: the export's memory bound
STATS_DEFAULT_DAYS = 30
CSV_COLUMNS = list(MessageRead.model_fields)


class MessageService:
    async def list_messages(
        self,
        session: AsyncSession,
        *,
        tenant: Tenant,
        store_id: str,
        filters: MessageFilters,
        limit: int,
        cursor: str | None,
    ) -> MessagePage:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        page, next_cursor = await MessageRepository.for_tenant(session, tenant.id).list_page(
            store.id, filters, limit=limit, cursor=cursor
        )
        return MessagePage(items=[MessageRead.of(m, jid) for m, jid in page], next_cursor=next_cursor)

    async def find(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, message_id: str
    ) -> tuple[Message, str]:
        """The store's message with its chat, or MessageNotFound (an id that is not a UUID names no message)."""
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        try:
            message_uuid = uuid.UUID(message_id)
        except ValueError as exc:
            raise MessageNotFound(message_id) from exc
        found = await MessageRepository.for_tenant(session, tenant.id).get(store.id, message_uuid)
        if found is None:
            raise MessageNotFound(message_id)
        return found

    async def get(
        self, session: AsyncSession, *, tenant: Tenant, store_id: str, message_id: str
    ) -> MessageDetail:
        found = await self.find(session, tenant=tenant, store_id=store_id, message_id=message_id)
        steps = [
            StatusStep(status=event.status, at=event.created_at, error=event.error)
            for event in await events.history(session, found[0].id)
            if event.status is not None
        ]
        return MessageDetail(**MessageRead.of(*found).model_dump(), status_history=steps)

    async def check_store(self, session: AsyncSession, *, tenant: Tenant, store_id: str) -> uuid.UUID:
        """The store's id, or the store's 404: an export checks this before its response starts."""
        return (await store_service.get(session, tenant=tenant, store_id=store_id)).id

    async def export(
        self,
        sessionmaker: AsyncSessionMaker,
        *,
        tenant_id: uuid.UUID,
        store_id: uuid.UUID,
        filters: MessageFilters,
        format: ExportFormat,
    ) -> AsyncIterator[str]:
        """The messages oldest first, one line each, read through a server-side cursor in one read-only
        transaction (one snapshot: nothing skipped or repeated however long the download takes). Runs in the
        response body, after the request's session has ended, so it opens its own."""
        if format == "csv":
            yield _csv_line(CSV_COLUMNS)
        async with sessionmaker() as session, session.begin():
            if not await store_belongs_to(session, store_id, tenant_id):
                return  # the store was deleted between the check and the stream: an empty export
            repository = MessageRepository.for_tenant(session, tenant_id)
            statement = repository.export_statement(store_id, filters).execution_options(
                yield_per=EXPORT_BATCH
            )
            result = await session.stream(statement)
            async for partition in result.partitions():
                lines = []
                for message, jid in partition:
                    item = MessageRead.of(message, jid)
                    lines.append(_csv_row(item) if format == "csv" else item.model_dump_json() + "\n")
                # Nothing keeps a batch's ORM objects once its lines are built: the session's identity map
                # holds them weakly, so memory stays one batch deep (expunging would break the open result).
                yield "".join(lines)

    async def stats(
        self,
        session: AsyncSession,
        redis: Redis,
        *,
        tenant: Tenant,
        store_id: str,
        since: datetime | None,
        until: datetime | None,
    ) -> StoreStats:
        store = await store_service.get(session, tenant=tenant, store_id=store_id)
        until = until or datetime.now(UTC)
        since = since or until - timedelta(days=STATS_DEFAULT_DAYS)
        rows = await MessageRepository.for_tenant(session, tenant.id).stats(store.id, since, until)
        days = [DayCount(day=row.day, inbound=row.inbound, outbound=row.outbound) for row in rows.days]
        return StoreStats(
            since=since,
            until=until,
            days=days,
            inbound=sum(day.inbound for day in days),
            outbound=sum(day.outbound for day in days),
            active_conversations=rows.active_conversations,
            reply_time=ReplyTimes(
                replied=rows.replied, median_seconds=rows.median_seconds, p95_seconds=rows.p95_seconds
            ),
            failed_sends=rows.failed_sends,
            dead_letters=await redis.xlen(messages_dlq(store.id)),
        )


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _csv_row(item: MessageRead) -> str:
    data = item.model_dump(mode="json")
    # The media object is one JSON column; every other value is a plain string, an empty cell for null.
    cells = [
        json.dumps(data[column])
        if isinstance(data[column], dict)
        else ("" if data[column] is None else str(data[column]))
        for column in CSV_COLUMNS
    ]
    return _csv_line(cells)


message = MessageService()
