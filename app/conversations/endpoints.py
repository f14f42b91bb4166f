from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.conversations.schemas import ConversationRead, ConversationUpdate
from app.conversations.service import conversation as conversation_service
from app.dependencies import SessionDep
from app.stores.auth import StoresWrite

router = APIRouter(prefix="/v1/stores", tags=["conversations"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such store, or no such conversation in it, for this tenant"}
}


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
