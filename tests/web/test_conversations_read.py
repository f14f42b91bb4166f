"""The store page's read of recent conversations: the chats' last messages, tenant-scoped (no browser here)."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message
from tests.support import ClientMaker, insert_other_tenant_store, post_store


async def _chat(sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, texts: list[tuple[str, str]]) -> None:
    async with sessionmaker() as session, session.begin():
        chat = Conversation(store_id=store_id, chat_jid="5491100000000@s.whatsapp.net", bot_state={})
        session.add(chat)
        await session.flush()
        session.add_all(
            Message(store_id=store_id, conversation_id=chat.id, direction=d, text=t, status="handled")
            for d, t in texts
        )


async def test_recent_conversations_in_order(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store_id = await post_store(client)
    await _chat(sessionmaker, uuid.UUID(store_id), [("in", "hola"), ("out", "hola"), ("in", "¿precio?")])
    response = await client.get(f"/web/stores/{store_id}/conversations")
    assert response.status_code == 200, response.text
    [chat] = response.json()["items"]
    assert [(m["direction"], m["text"]) for m in chat["messages"]] == [
        ("in", "hola"),
        ("out", "hola"),
        ("in", "¿precio?"),
    ]
    assert chat["bot_paused"] is False


async def test_another_tenants_store_is_not_found(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    theirs = await insert_other_tenant_store(sessionmaker)
    await _chat(sessionmaker, theirs, [("in", "secreto")])
    response = await client.get(f"/web/stores/{theirs}/conversations")
    assert response.status_code == 404
    assert "secreto" not in response.text


async def test_a_viewer_may_read_and_nobody_else(
    client: AsyncClient, viewer_client: AsyncClient, make_client: ClientMaker
) -> None:
    store_id = await post_store(client)
    assert (await viewer_client.get(f"/web/stores/{store_id}/conversations")).status_code == 200
    anonymous = make_client()
    assert (await anonymous.get(f"/web/stores/{store_id}/conversations")).status_code == 401


async def test_the_pages_are_not_in_the_api_document(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if not p.startswith(("/v1/", "/healthz", "/readyz"))]
    page = await client.get("/", headers={"Accept-Language": "en-US,en;q=0.8"})
    assert page.status_code == 200 and "Create an account" in page.text
    assert (await client.get("/static/app.js")).status_code == 200
