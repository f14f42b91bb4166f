from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator

from app.dependencies import RedisDep, SessionDep, StateDep
from app.kit.pagination import CURSOR_PATTERN
from app.messages.chats import CHAT_PATTERN, chat_jid
from app.messages.repository import MessageFilters
from app.messages.schemas import MessageDetail, MessagePage, StoreStats
from app.messages.service import ExportFormat
from app.messages.service import message as message_service
from app.models import Direction, MessageStatus
from app.stores.auth import MessagesRead

router = APIRouter(prefix="/v1/stores", tags=["messages"])

_STORE_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such store for this tenant"}}
_PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_STORE_NOT_FOUND,
    422: {"description": "A cursor that this endpoint did not return, or a malformed parameter."},
}
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[
    str | None,
    Query(description="`next_cursor` of the previous page (opaque).", pattern=CURSOR_PATTERN),
]
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_only(value: Any) -> Any:
    # pydantic would read `since=0.5` as a Unix time; the document promises an ISO 8601 date-time.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date and time, like 2026-12-06T10:00:00Z")
    return value


Moment = Annotated[datetime, BeforeValidator(_iso_only)]
Since = Annotated[Moment | None, Query(description="From this moment on (inclusive); naive means UTC.")]
Until = Annotated[Moment | None, Query(description="Up to this moment (exclusive); naive means UTC.")]


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@router.get(
    "/{store_id}/messages",
    summary="The store's messages, newest first",
    description="Keyset pages: a page's `next_cursor` continues exactly after its last message, so no message "
    "is skipped or repeated while new ones arrive (they come before the first page).",
    responses=_PAGE_ERRORS,
)
async def list_messages(
    store_id: str,
    auth: MessagesRead,
    session: SessionDep,
    chat: Annotated[
        str | None,
        Query(
            description="The customer's number (international form, `+` and country code; normalised to "
            "E.164) or the chat's JID (`5491155550000@s.whatsapp.net`, `123456789@lid`).",
            pattern=CHAT_PATTERN,
        ),
    ] = None,
    direction: Annotated[Direction | None, Query(description="in | out")] = None,
    status: MessageStatus | None = None,
    type: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,20}$", description="text, image, audio ...")
    ] = None,
    since: Since = None,
    until: Until = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Full-text search of the text, Spanish stemming, accents ignored (`cancion` finds "
            '`canción`); web-search syntax: `"exact phrase"`, `-excluded`, `or`.',
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MessagePage:
    filters = MessageFilters(
        chat_jid=chat_jid(chat) if chat is not None else None,
        direction=direction.value if direction is not None else None,
        status=status.value if status is not None else None,
        type=type,
        since=_aware(since),
        until=_aware(until),
        q=q,
    )
    return await message_service.list_messages(
        session, tenant=auth.tenant, store_id=store_id, filters=filters, limit=limit, cursor=cursor
    )


# Declared before `/{message_id}`, which would otherwise take "export" for an id.
@router.get(
    "/{store_id}/messages/export",
    summary="Every message of a period, oldest first, as NDJSON or CSV (streamed)",
    responses={
        **_STORE_NOT_FOUND,
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "description": "One message per line (NDJSON: the message object; CSV: a header line, then its "
            "fields, `media` as JSON).",
        },
    },
    response_class=StreamingResponse,
)
async def export_messages(
    store_id: str,
    auth: MessagesRead,
    session: SessionDep,
    state: StateDep,
    since: Since = None,
    until: Until = None,
    format: ExportFormat = "ndjson",
) -> StreamingResponse:
    # The request's session ends before the body streams (see app/dependencies.py): check the store with it,
    # and let the stream open its own from the sessionmaker.
    store_uuid = await message_service.check_store(session, tenant=auth.tenant, store_id=store_id)
    lines = message_service.export(
        state.sessionmaker,
        tenant_id=auth.tenant.id,
        store_id=store_uuid,
        filters=MessageFilters(since=_aware(since), until=_aware(until)),
        format=format,
    )
    media_type = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    filename = f"messages-{store_uuid}.{format}"
    return StreamingResponse(
        lines, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get(
    "/{store_id}/messages/{message_id}",
    summary="One message, with its status history",
    responses={404: {"description": "No such store, or no such message in it, for this tenant"}},
)
async def get_message(
    store_id: str, message_id: str, auth: MessagesRead, session: SessionDep
) -> MessageDetail:
    return await message_service.get(session, tenant=auth.tenant, store_id=store_id, message_id=message_id)


@router.get(
    "/{store_id}/stats",
    summary="The store's activity over a period (default: the last 30 days)",
    responses=_STORE_NOT_FOUND,
)
async def store_stats(
    store_id: str,
    auth: MessagesRead,
    session: SessionDep,
    redis: RedisDep,
    since: Since = None,
    until: Until = None,
) -> StoreStats:
    return await message_service.stats(
        session, redis, tenant=auth.tenant, store_id=store_id, since=_aware(since), until=_aware(until)
    )
