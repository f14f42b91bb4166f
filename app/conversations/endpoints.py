from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.conversations.schemas import ConversationPage, ConversationRead, ConversationUpdate
from app.conversations.service import conversation as conversation_service
from app.dependencies import SessionDep
from app.kit.pagination import CURSOR_PATTERN
from app.stores.auth import MessagesRead, StoresWrite

router = APIRouter(prefix="/v1/stores", tags=["conversations"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such store, or no such conversation in it, for this tenant"}
}


@router.get(
    "/{store_id}/conversations",
    summary="The store's chats, newest activity first",
    description="Each chat with its last message, its unread count (the customer's messages after the store's "
    "last message in it) and whether a person has it. Chats without any message are not listed.",
    responses={
        404: {"description": "No such store for this tenant"},
        422: {"description": "A cursor that this endpoint did not return, or a malformed parameter."},
    },
)
async def list_conversations(
    store_id: str,
    auth: MessagesRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(description="`next_cursor` of the previous page (opaque).", pattern=CURSOR_PATTERN),
    ] = None,
) -> ConversationPage:
    return await conversation_service.list_conversations(
        session, tenant=auth.tenant, store_id=store_id, limit=limit, cursor=cursor
    )


@router.patch(
    "/{store_id}/conversations/{conversation_id}",
    summary="Hand a chat to a person, or back to the bot",
    description='`{"bot_paused": true}` keeps the bot quiet in this chat while a person answers; '
    '`{"bot_paused": false}` has the bot answer again from the customer\'s next message (the messages that '
    "came while paused stay unanswered by the bot).",
    responses=_NOT_FOUND,
)
async def update_conversation(
    store_id: str, conversation_id: str, body: ConversationUpdate, auth: StoresWrite, session: SessionDep
) -> ConversationRead:
    updated = await conversation_service.set_bot_paused(
        session,
        tenant=auth.tenant,
        store_id=store_id,
        conversation_id=conversation_id,
        paused=body.bot_paused,
    )
    return ConversationRead.model_validate(updated)
