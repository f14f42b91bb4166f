"""GET /v1/stores/{store_id}/messages and /messages/{message_id}: the message object, filters, search, pages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import update

from app.kit.db import AsyncSessionMaker
from app.models import Message
from tests.messages.helpers import LID_CHAT, PHONE_CHAT, add_conversation, add_message, bulk_insert
from tests.support import insert_other_tenant_store, post_store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

MESSAGE_FIELDS = {
    "id", "store_id", "conversation_id", "chat", "direction", "whatsapp_id", "sender", "type", "text", "media",
    "status", "created_at", "whatsapp_timestamp", "reply_to",
}  # fmt: skip


async def messages(client: AsyncClient, store_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/stores/{store_id}/messages", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def texts(page: dict[str, Any]) -> list[str]:
    return [item["text"] for item in page["items"]]


async def test_the_message_object(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store_id = await post_store(client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT, "Ana")
    inbound = await add_message(
        sessionmaker,
        store_id,
        chat,
        type="image",
        text="mirá la foto",
        sender_jid=PHONE_CHAT,
        media={"mimetype": "image/jpeg", "caption": "mirá la foto", "size": 2048, "width": 10},
        wa_timestamp=T0,
        created_at=T0,
    )
    reply = await add_message(
        sessionmaker,
        store_id,
        chat,
        direction="out",
        text="linda",
        reply_to_id=inbound,
        created_at=T0 + timedelta(1),
    )

    page = await messages(client, store_id)
    assert [item["id"] for item in page["items"]] == [str(reply), str(inbound)]  # newest first
    assert page["next_cursor"] is None
    item = page["items"][1]
    assert set(item) == MESSAGE_FIELDS
    assert item["chat"] == "+5491155550001"  # a phone JID is shown as its E.164 number
    assert (item["direction"], item["type"], item["sender"], item["store_id"]) == (
        "in",
        "image",
        PHONE_CHAT,
        store_id,
    )
    assert item["media"] == {
        "type": "image", "mime": "image/jpeg", "size": 2048, "caption": "mirá la foto", "file_name": None,
        "status": None, "download_url": None,  # no file state: metadata only (tests/media covers the files)
    }  # fmt: skip
    assert datetime.fromisoformat(item["whatsapp_timestamp"]) == T0
    assert page["items"][0]["reply_to"] == str(inbound) and page["items"][0]["media"] is None

    one = await client.get(f"/v1/stores/{store_id}/messages/{inbound}")
    assert one.status_code == 200
    detail = one.json()
    history = detail.pop("status_history")
    assert detail == item
    assert [step["status"] for step in history] == ["handled"]  # written as handled at once

    lid = await add_conversation(sessionmaker, store_id, LID_CHAT)
    await add_message(sessionmaker, store_id, lid, text="desde un LID")
    assert (await messages(client, store_id, limit=1))["items"][0][
        "chat"
    ] == LID_CHAT  # no number known: the JID


async def test_a_message_with_its_status_history(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    reply = await add_message(sessionmaker, store_id, chat, direction="out", status="pending")
    for status, error in [("sending", None), ("failed", "not on WhatsApp")]:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Message).where(Message.id == reply).values(status=status, error=error)
            )
    async with sessionmaker() as session, session.begin():  # not a status change: no step
        await session.execute(update(Message).where(Message.id == reply).values(text="otra"))

    response = await client.get(f"/v1/stores/{store_id}/messages/{reply}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    steps = body["status_history"]
    assert [(s["status"], s["error"]) for s in steps] == [
        ("pending", None),
        ("sending", None),
        ("failed", "not on WhatsApp"),
    ]
    moments = [datetime.fromisoformat(s["at"]) for s in steps]
    assert moments == sorted(moments)
    assert "status_history" not in (await messages(client, store_id))["items"][0]  # the detail only


async def test_one_customer_under_a_phone_number_and_a_lid(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    """A conversation first seen under its LID, its number learned later: shown by the number, found by
    either identifier; and one keyed by number finds its LID too."""
    store_id = await post_store(client)
    by_lid = await add_conversation(sessionmaker, store_id, LID_CHAT, alt_jid=PHONE_CHAT)
    await add_message(sessionmaker, store_id, by_lid, text="desde el LID", created_at=T0)
    other_lid = "55544433322211@lid"
    by_phone = await add_conversation(
        sessionmaker, store_id, "5491177770000@s.whatsapp.net", alt_jid=other_lid
    )
    await add_message(sessionmaker, store_id, by_phone, text="desde el número", created_at=T0 + timedelta(1))

    page = await messages(client, store_id)
    assert [(i["text"], i["chat"]) for i in page["items"]] == [
        ("desde el número", "+5491177770000"),
        ("desde el LID", "+5491155550001"),  # the number, though the chat is keyed by its LID
    ]
    for chat in ("+5491155550001", PHONE_CHAT, LID_CHAT):
        assert texts(await messages(client, store_id, chat=chat)) == ["desde el LID"], chat
    for chat in ("+5491177770000", other_lid):
        assert texts(await messages(client, store_id, chat=chat)) == ["desde el número"], chat

    listed = (await client.get(f"/v1/stores/{store_id}/conversations")).json()["items"]
    assert [(c["chat"], c["chat_jid"], c["alt_jid"]) for c in listed] == [
        ("+5491177770000", "5491177770000@s.whatsapp.net", other_lid),
        ("+5491155550001", LID_CHAT, PHONE_CHAT),
    ]


async def test_filters(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store_id = await post_store(client)
    ana = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    lid = await add_conversation(sessionmaker, store_id, LID_CHAT)
    await add_message(sessionmaker, store_id, ana, text="a1", created_at=T0)
    await add_message(
        sessionmaker,
        store_id,
        ana,
        text="a2",
        direction="out",
        status="failed",
        created_at=T0 + timedelta(hours=1),
    )
    await add_message(
        sessionmaker, store_id, lid, text="l1", type="audio", created_at=T0 + timedelta(hours=2)
    )
    await add_message(
        sessionmaker, store_id, lid, text="l2", direction="out", created_at=T0 + timedelta(hours=3)
    )
    other_store = await post_store(client, "Otra")
    other_chat = await add_conversation(sessionmaker, other_store, PHONE_CHAT)
    await add_message(sessionmaker, other_store, other_chat, text="otra tienda", created_at=T0)

    assert texts(await messages(client, store_id)) == ["l2", "l1", "a2", "a1"]
    # A number as people write it, normalised to E.164; or the JID itself.
    for chat in ("+5491155550001", "+54 9 11 5555-0001", PHONE_CHAT):
        assert texts(await messages(client, store_id, chat=chat)) == ["a2", "a1"], chat
    assert texts(await messages(client, store_id, chat=LID_CHAT)) == ["l2", "l1"]
    assert texts(await messages(client, store_id, chat="+5491100009999")) == []  # a chat the store never had
    assert texts(await messages(client, store_id, direction="out")) == ["l2", "a2"]
    assert texts(await messages(client, store_id, status="failed")) == ["a2"]
    assert texts(await messages(client, store_id, type="audio")) == ["l1"]
    since, until = (T0 + timedelta(hours=1)).isoformat(), (T0 + timedelta(hours=3)).isoformat()
    assert texts(await messages(client, store_id, since=since, until=until)) == ["l1", "a2"]  # [since, until)
    assert texts(await messages(client, store_id, since="2026-11-01T13:00:00")) == [
        "l2",
        "l1",
        "a2",
    ]  # naive: UTC
    assert texts(await messages(client, store_id, chat=PHONE_CHAT, direction="in")) == ["a1"]


async def test_bad_parameters_are_422(client: AsyncClient) -> None:
    store_id = await post_store(client)
    for params in (
        {"limit": 0}, {"limit": 201}, {"direction": "sideways"}, {"status": "lost"}, {"chat": "hola"},
        {"chat": "5491155550001"}, {"since": "yesterday"}, {"cursor": "no es un cursor"}, {"cursor": "bm9wZQ"},
        {"q": ""},
    ):  # fmt: skip
        response = await client.get(f"/v1/stores/{store_id}/messages", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    assert (await client.get(f"/v1/stores/{store_id}/messages", params={"limit": 200})).status_code == 200


async def test_search_ignores_accents(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store_id = await post_store(client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    await add_message(sessionmaker, store_id, chat, text="¿Tenés la canción de cumpleaños?", created_at=T0)
    await add_message(
        sessionmaker, store_id, chat, text="Mañana paso a buscar el pedido", created_at=T0 + timedelta(1)
    )
    await add_message(sessionmaker, store_id, chat, text="la cancion sin tilde", created_at=T0 + timedelta(2))
    await add_message(sessionmaker, store_id, chat, text=None, type="sticker", created_at=T0 + timedelta(3))
    other = await insert_other_tenant_store(sessionmaker)
    other_chat = await add_conversation(sessionmaker, other, PHONE_CHAT)
    await add_message(sessionmaker, other, other_chat, text="canción de otro tenant")

    both = ["la cancion sin tilde", "¿Tenés la canción de cumpleaños?"]
    for q in ("cancion", "canción", "CANCIÓN", "canciones"):  # accents, case, and the Spanish plural
        assert texts(await messages(client, store_id, q=q)) == both, q
    assert texts(await messages(client, store_id, q="manana")) == ["Mañana paso a buscar el pedido"]
    assert texts(await messages(client, store_id, q="pedidos")) == ["Mañana paso a buscar el pedido"]
    assert texts(await messages(client, store_id, q='"cancion de cumpleaños"')) == [both[1]]
    assert texts(await messages(client, store_id, q="cancion -tilde")) == [both[1]]
    assert texts(await messages(client, store_id, q="pizza")) == []
    assert texts(await messages(client, store_id, q="cancion", direction="out")) == []
    # Search pages like the rest.
    first = await messages(client, store_id, q="cancion", limit=1)
    second = await messages(client, store_id, q="cancion", limit=1, cursor=first["next_cursor"])
    assert texts(first) + texts(second) == both and second["next_cursor"] is None


async def test_pages_neither_skip_nor_repeat_while_messages_arrive(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    chats = [
        await add_conversation(sessionmaker, store_id, f"54911000000{i}@s.whatsapp.net") for i in range(3)
    ]
    # 600 messages, many sharing a timestamp (one batch per second of 3 chats): ties broken by id.
    for i, chat in enumerate(chats):
        await bulk_insert(sessionmaker, store_id, chat, count=200, start=T0, tag=str(i))
    existing: set[str] = set()
    cursor = None
    while True:
        page = await messages(client, store_id, limit=200, **({"cursor": cursor} if cursor else {}))
        existing |= {item["id"] for item in page["items"]}
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(existing) == 600

    stop, arrived = asyncio.Event(), asyncio.Event()
    inserted: list[uuid.UUID] = []

    async def keep_inserting(chat: uuid.UUID) -> None:
        while not stop.is_set():
            inserted.append(await add_message(sessionmaker, store_id, chat, text="nuevo"))
            arrived.set()

    writers = [asyncio.create_task(keep_inserting(chat)) for chat in chats for _ in range(2)]
    seen: list[str] = []
    moments: list[tuple[str, str]] = []
    page = await messages(client, store_id, limit=37)
    while True:
        seen += [item["id"] for item in page["items"]]
        moments += [(item["created_at"], item["id"]) for item in page["items"]]
        if page["next_cursor"] is None:
            break
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 10)  # a new message committed between two page reads
        page = await messages(client, store_id, limit=37, cursor=page["next_cursor"])
    stop.set()
    await asyncio.gather(*writers)

    assert len(inserted) >= 16  # messages really arrived between every two of the 17 page reads
    assert len(seen) == len(set(seen))  # nothing repeated
    assert existing <= set(seen)  # nothing that existed before the first page was skipped
    assert set(seen) - existing <= {str(i) for i in inserted}
    keys = [(datetime.fromisoformat(at), uuid.UUID(id_)) for at, id_ in moments]
    assert keys == sorted(keys, reverse=True)  # one total order, newest first


async def test_another_stores_or_tenants_message_is_not_found(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    mine, sibling = await post_store(client, "Mine"), await post_store(client, "Sibling")
    sibling_message = await add_message(
        sessionmaker, sibling, await add_conversation(sessionmaker, sibling, PHONE_CHAT)
    )
    other_store = await insert_other_tenant_store(sessionmaker)
    other_message = await add_message(
        sessionmaker, other_store, await add_conversation(sessionmaker, other_store, PHONE_CHAT)
    )
    cases = [
        (mine, sibling_message, "message_not_found"),
        (mine, other_message, "message_not_found"),
        (other_store, other_message, "store_not_found"),
        (mine, uuid.uuid4(), "message_not_found"),
        (mine, "not-a-uuid", "message_not_found"),
    ]
    for store_id, message_id, code in cases:
        response = await client.get(f"/v1/stores/{store_id}/messages/{message_id}")
        assert response.status_code == 404, (store_id, message_id, response.text)
        assert response.json()["error"]["code"] == code
    assert (await messages(client, mine))["items"] == []  # the list shows neither
    response = await client.get(f"/v1/stores/{other_store}/messages")
    assert response.status_code == 404


async def test_a_viewer_reads_the_history(
    client: AsyncClient, viewer_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    message_id = await add_message(
        sessionmaker, store_id, await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    )
    page = await messages(viewer_client, store_id)
    assert [item["id"] for item in page["items"]] == [str(message_id)]
