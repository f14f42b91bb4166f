"""PATCH /v1/stores/{store_id}/conversations/{conversation_id}: the shape, validation and tenant isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.kit.db import AsyncSessionMaker
from app.models import Conversation
from tests.bots.helpers import create_conversation
from tests.conversations.helpers import CHAT
from tests.support import insert_other_tenant_store, post_store


def path(store_id: str | uuid.UUID, conversation_id: str | uuid.UUID) -> str:
    return f"/v1/stores/{store_id}/conversations/{conversation_id}"


async def test_pause_then_resume(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store_id = await post_store(client)
    conversation_id = await create_conversation(sessionmaker, uuid.UUID(store_id), CHAT, "Ana")

    before = datetime.now(UTC)
    response = await client.patch(path(store_id, conversation_id), json={"bot_paused": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "chat_jid",
        "alt_jid",
        "customer_name",
        "bot_paused",
        "bot_paused_at",
        "last_message_at",
    }
    assert (body["id"], body["chat_jid"], body["customer_name"]) == (str(conversation_id), CHAT, "Ana")
    assert body["bot_paused"] is True and body["last_message_at"] is None
    paused_at = datetime.fromisoformat(body["bot_paused_at"])
    assert before - timedelta(seconds=5) <= paused_at <= datetime.now(UTC) + timedelta(seconds=5)

    # Pausing again is not a new handoff: the clock of the auto-resume keeps running.
    again = await client.patch(path(store_id, conversation_id), json={"bot_paused": True})
    assert again.status_code == 200 and again.json()["bot_paused_at"] == body["bot_paused_at"]

    response = await client.patch(path(store_id, conversation_id), json={"bot_paused": False})
    assert response.status_code == 200
    assert (response.json()["bot_paused"], response.json()["bot_paused_at"]) == (False, None)


@pytest.mark.parametrize(
    "body",
    [{}, {"bot_paused": "maybe"}, {"bot_paused": None}, {"bot_paused": False, "extra": 1}],
    ids=["missing", "not-a-bool", "null", "unknown-field"],
)
async def test_a_bad_body_is_a_422(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, body: dict[str, Any]
) -> None:
    store_id = await post_store(client)
    conversation_id = await create_conversation(sessionmaker, uuid.UUID(store_id), CHAT)
    response = await client.patch(path(store_id, conversation_id), json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_other_tenants_and_other_stores_conversations_are_not_found(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    mine = await post_store(client, "Mine")
    sibling = await post_store(client, "Also mine")
    own_chat = await create_conversation(sessionmaker, uuid.UUID(mine), CHAT)
    sibling_chat = await create_conversation(sessionmaker, uuid.UUID(sibling), CHAT)
    other_store = await insert_other_tenant_store(sessionmaker)
    other_chat = await create_conversation(sessionmaker, other_store, CHAT)

    cases = [
        (other_store, other_chat, "store_not_found"),  # another tenant's store and chat
        (mine, other_chat, "conversation_not_found"),  # another tenant's chat through my store
        (mine, sibling_chat, "conversation_not_found"),  # my other store's chat through this store
        (mine, uuid.uuid4(), "conversation_not_found"),
        (mine, "not-a-uuid", "conversation_not_found"),
        ("not-a-uuid", own_chat, "store_not_found"),
    ]
    for store_id, conversation_id, code in cases:
        response = await client.patch(path(store_id, conversation_id), json={"bot_paused": True})
        assert response.status_code == 404, (store_id, conversation_id)
        assert response.json()["error"]["code"] == code

    # None of the chats reachable only through a wrong path was touched.
    async with sessionmaker() as session:
        paused = await session.scalars(
            select(Conversation.bot_paused).where(Conversation.id.in_([sibling_chat, other_chat]))
        )
        assert list(paused) == [False, False]
