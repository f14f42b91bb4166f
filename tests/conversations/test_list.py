"""GET /v1/stores/{store_id}/conversations: newest activity first, last message, unread count, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from app.kit.db import AsyncSessionMaker
from tests.messages.helpers import LID_CHAT, PHONE_CHAT, add_conversation, add_message
from tests.support import insert_other_tenant_store, post_store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def conversations(client: AsyncClient, store_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/stores/{store_id}/conversations", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_chats_newest_activity_first_with_last_message_and_unread_count(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    ana = await add_conversation(sessionmaker, store_id, PHONE_CHAT, "Ana")
    lid = await add_conversation(sessionmaker, store_id, LID_CHAT, "Beto")
    third = await add_conversation(sessionmaker, store_id, "5491100000003@s.whatsapp.net")
    await add_conversation(sessionmaker, store_id, "5491100000004@s.whatsapp.net")  # no message: not listed

    # Ana: two messages, the store's reply, then two more: 2 unread.
    for minutes, direction in ((0, "in"), (1, "in"), (2, "out"), (3, "in"), (4, "in")):
        await add_message(
            sessionmaker,
            store_id,
            ana,
            direction=direction,
            text=f"ana {minutes}",
            created_at=T0 + timedelta(minutes=minutes),
        )
    # Beto: the store never wrote: all 3 unread; the newest chat.
    for minutes in (10, 11, 12):
        await add_message(
            sessionmaker, store_id, lid, text=f"beto {minutes}", created_at=T0 + timedelta(minutes=minutes)
        )
    # The third: answered: 0 unread, the store's message last; and a person has it.
    await add_message(sessionmaker, store_id, third, text="hola", created_at=T0 + timedelta(minutes=5))
    await add_message(
        sessionmaker, store_id, third, direction="out", text="¿qué tal?", created_at=T0 + timedelta(minutes=6)
    )
    assert (
        await client.patch(f"/v1/stores/{store_id}/conversations/{third}", json={"bot_paused": True})
    ).status_code == 200

    page = await conversations(client, store_id)
    assert page["next_cursor"] is None
    summary = [(c["chat"], c["customer_name"], c["unread_count"], c["bot_paused"]) for c in page["items"]]
    assert summary == [
        (LID_CHAT, "Beto", 3, False),
        ("+5491100000003", None, 0, True),
        ("+5491155550001", "Ana", 2, False),
    ]
    first = page["items"][0]
    assert first["chat_jid"] == LID_CHAT and first["id"] == str(lid)
    assert first["last_message"]["text"] == "beto 12" and first["last_message"]["direction"] == "in"
    assert datetime.fromisoformat(first["last_message_at"]) == T0 + timedelta(minutes=12)
    assert page["items"][1]["last_message"]["direction"] == "out"

    # Pages of one: the same chats in the same order, once each.
    seen, cursor = [], None
    while True:
        one = await conversations(client, store_id, limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [c["id"] for c in one["items"]]
        if (cursor := one["next_cursor"]) is None:
            break
    assert seen == [c["id"] for c in page["items"]]


async def test_another_tenants_store_and_bad_parameters(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    other = await insert_other_tenant_store(sessionmaker)
    await add_message(sessionmaker, other, await add_conversation(sessionmaker, other, PHONE_CHAT))
    response = await client.get(f"/v1/stores/{other}/conversations")
    assert response.status_code == 404 and response.json()["error"]["code"] == "store_not_found"

    store_id = await post_store(client)
    assert (await conversations(client, store_id))["items"] == []
    for params in ({"limit": 0}, {"limit": 201}, {"cursor": "bm9wZQ"}):
        response = await client.get(f"/v1/stores/{store_id}/conversations", params=params)
        assert response.status_code == 422, params
