"""POST /v1/stores/{id}/messages through the API alone: validation, 409, idempotency, the bot paused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from app.contracts import outbox_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.models import Event, IdempotencyKey, StoreStatus
from app.sending import service as sending_service
from tests.conversations.helpers import HANDOFF_OPTION, Customer, menu_store
from tests.sending.helpers import TO, TO_JID, conversation, rows, set_status
from tests.support import ClientMaker, create_api_key, post_store
from workers.handler import InboundHandler


async def connected_store(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> str:
    store_id = await post_store(client, "Almacén")
    await set_status(sessionmaker, store_id, StoreStatus.connected)
    return store_id


async def outbox(redis: Redis, store_id: str) -> list[dict[str, str]]:
    return [fields for _, fields in await redis.xrange(outbox_stream(store_id))]


async def test_a_send_is_a_pending_reply_in_the_chat_queued_after_the_commit(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await connected_store(client, sessionmaker)
    response = await client.post(
        f"/v1/stores/{store_id}/messages",
        json={"to": "+54 9 11 6666-0000", "text": "¡Hola! Tu pedido salió."},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending" and body["direction"] == "out" and body["type"] == "text"
    assert body["chat"] == TO and body["text"] == "¡Hola! Tu pedido salió." and body["whatsapp_id"] is None
    assert "Idempotent-Replayed" not in response.headers
    [row] = await rows(sessionmaker, store_id)
    assert str(row.id) == body["id"] and row.status == "pending" and row.direction == "out"
    chat = await conversation(sessionmaker, store_id, TO_JID)
    assert chat is not None and str(chat.id) == body["conversation_id"]
    assert chat.last_message_at is not None  # listed among the store's conversations
    assert await outbox(redis, store_id) == [{"message_id": body["id"], "chat_jid": TO_JID}]
    assert chat.bot_paused is True and chat.bot_paused_at is not None  # a person's reply
    # The change log has the message and the pause (a new chat paused at once too).
    async with sessionmaker() as session:
        logged = (
            await session.execute(
                select(Event.kind, Event.status).where(
                    Event.store_id == uuid.UUID(store_id), Event.kind != "store.status"
                )
            )
        ).all()
    assert sorted(logged) == [("conversation.bot_paused", "paused"), ("message.created", "pending")]
    # It reads back like any message, and the chat shows in the conversation list.
    fetched = await client.get(f"/v1/stores/{store_id}/messages/{body['id']}")
    assert fetched.status_code == 200 and fetched.json()["status"] == "pending"
    listed = (await client.get(f"/v1/stores/{store_id}/conversations")).json()["items"]
    assert [item["chat"] for item in listed] == [TO]


async def test_a_jid_is_accepted_and_a_lid_chat_kept(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await connected_store(client, sessionmaker)
    by_jid = await client.post(f"/v1/stores/{store_id}/messages", json={"to": TO_JID, "text": "uno"})
    by_lid = await client.post(
        f"/v1/stores/{store_id}/messages", json={"to": "123456789012@lid", "text": "dos"}
    )
    assert by_jid.status_code == 202 and by_jid.json()["chat"] == TO
    assert by_lid.status_code == 202 and by_lid.json()["chat"] == "123456789012@lid"
    assert [e["chat_jid"] for e in await outbox(redis, store_id)] == [TO_JID, "123456789012@lid"]


async def test_bad_input_is_a_422_that_says_what_is_wrong_and_writes_nothing(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await connected_store(client, sessionmaker)
    cases = {
        "invalid number": ({"to": "+54911000000077", "text": "hola"}, "to", "not a valid phone number"),
        "no number": ({"to": "hola", "text": "hola"}, "to", "pattern"),
        "group": ({"to": "1203630@g.us", "text": "hola"}, "to", "pattern"),
        "too long": ({"to": TO, "text": "a" * 4097}, "text", "4096"),
        "empty": ({"to": TO, "text": ""}, "text", "at least 1"),
        "blank": ({"to": TO, "text": "   \n"}, "text", "only blanks"),
        "no text": ({"to": TO}, "", "give a `text`"),
        "unknown field": ({"to": TO, "text": "hola", "colour": "red"}, "colour", "not permitted"),
    }
    for name, (payload, field, words) in cases.items():
        response = await client.post(f"/v1/stores/{store_id}/messages", json=payload)
        assert response.status_code == 422, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error", name
        [detail] = error["details"]
        assert detail["field"] == (f"body.{field}" if field else "body"), (name, detail)
        assert words in detail["message"], (name, detail)
    exactly = await client.post(f"/v1/stores/{store_id}/messages", json={"to": TO, "text": "a" * 4096})
    assert exactly.status_code == 202, exactly.text
    assert len(await rows(sessionmaker, store_id)) == 1 and len(await outbox(redis, store_id)) == 1
    bad_key = await client.post(
        f"/v1/stores/{store_id}/messages", json={"to": TO, "text": "x"}, headers={"Idempotency-Key": "a b"}
    )
    assert (
        bad_key.status_code == 422
        and bad_key.json()["error"]["details"][0]["field"] == "header.Idempotency-Key"
    )


async def test_a_store_that_is_not_connected_is_a_409(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await post_store(client, "Sin conectar")
    for status in (StoreStatus.unlinked, StoreStatus.reconnecting, StoreStatus.logged_out):
        await set_status(sessionmaker, store_id, status)
        response = await client.post(
            f"/v1/stores/{store_id}/messages",
            json={"to": TO, "text": "hola"},
            headers={"Idempotency-Key": "k1"},
        )
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "store_not_connected" and error["details"] == {"status": status.value}
        assert "not connected" in error["message"]
    assert await rows(sessionmaker, store_id) == [] and await outbox(redis, store_id) == []
    assert await conversation(sessionmaker, store_id, TO_JID) is None
    # The refused request did not take the key: once connected, the same key sends.
    await set_status(sessionmaker, store_id, StoreStatus.connected)
    response = await client.post(
        f"/v1/stores/{store_id}/messages", json={"to": TO, "text": "hola"}, headers={"Idempotency-Key": "k1"}
    )
    assert response.status_code == 202, response.text


async def test_the_same_key_and_body_return_the_same_message_and_send_nothing_new(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await connected_store(client, sessionmaker)
    url, key = f"/v1/stores/{store_id}/messages", {"Idempotency-Key": "pedido-42-enviado"}
    first = await client.post(url, json={"to": TO, "text": "Salió tu pedido"}, headers=key)
    # The same request, the number written another way: the same request once normalised.
    again = await client.post(url, json={"to": "+54 9 11 6666 0000", "text": "Salió tu pedido"}, headers=key)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert len(await rows(sessionmaker, store_id)) == 1 and len(await outbox(redis, store_id)) == 1
    # Another body with the key: 422, nothing written.
    other = await client.post(url, json={"to": TO, "text": "Otro texto"}, headers=key)
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    quiet = await client.post(
        url, json={"to": TO, "text": "Salió tu pedido", "pause_bot": False}, headers=key
    )
    assert quiet.status_code == 422
    # The replay survives a disconnection: it was accepted.
    await set_status(sessionmaker, store_id, StoreStatus.reconnecting)
    late = await client.post(url, json={"to": TO, "text": "Salió tu pedido"}, headers=key)
    assert late.status_code == 202 and late.json()["id"] == first.json()["id"]
    assert len(await rows(sessionmaker, store_id)) == 1 and len(await outbox(redis, store_id)) == 1


async def test_keys_are_per_store_and_tenant(
    client: AsyncClient, other_client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    mine, also_mine = await connected_store(client, sessionmaker), await connected_store(client, sessionmaker)
    theirs = await connected_store(other_client, sessionmaker)
    key = {"Idempotency-Key": "same-key"}
    ids = set()
    for http, store_id in ((client, mine), (client, also_mine), (other_client, theirs)):
        response = await http.post(
            f"/v1/stores/{store_id}/messages", json={"to": TO, "text": "hola"}, headers=key
        )
        assert response.status_code == 202 and "Idempotent-Replayed" not in response.headers
        ids.add(response.json()["id"])
    assert len(ids) == 3
    # And another tenant cannot replay (or learn of) my key on my store.
    stranger = await other_client.post(
        f"/v1/stores/{mine}/messages", json={"to": TO, "text": "hola"}, headers=key
    )
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "store_not_found"


async def test_two_concurrent_requests_with_one_key_make_one_message(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await connected_store(client, sessionmaker)
    key = await create_api_key(client, name="integración")
    callers = [make_client(key["key"]) for _ in range(8)]
    for round_ in range(5):
        headers = {"Idempotency-Key": f"race-{round_}"}
        responses = await asyncio.gather(
            *(
                http.post(
                    f"/v1/stores/{store_id}/messages", json={"to": TO, "text": f"r{round_}"}, headers=headers
                )
                for http in callers
            )
        )
        assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert len(await rows(sessionmaker, store_id)) == 5 and len(await outbox(redis, store_id)) == 5


async def test_an_expired_key_sends_again(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await connected_store(client, sessionmaker)
    url, key = f"/v1/stores/{store_id}/messages", {"Idempotency-Key": "old"}
    first = await client.post(url, json={"to": TO, "text": "hola"}, headers=key)
    async with transaction(sessionmaker) as session:  # 23 h later: still remembered
        await session.execute(
            update(IdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(hours=23))
        )
    assert (await client.post(url, json={"to": TO, "text": "hola"}, headers=key)).json()[
        "id"
    ] == first.json()["id"]
    async with transaction(sessionmaker) as session:  # 25 h later: forgotten; another body is a new message
        await session.execute(
            update(IdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    second = await client.post(url, json={"to": TO, "text": "otra cosa"}, headers=key)
    assert second.status_code == 202 and second.json()["id"] != first.json()["id"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


async def test_a_human_reply_pauses_the_bot_and_the_next_customer_message_gets_no_reply(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await menu_store(client)
    await set_status(sessionmaker, store_id, StoreStatus.connected)
    customer = await Customer.open(sessionmaker, InboundHandler(sessionmaker, redis), store_id)
    assert await customer.says("hola")  # the bot answers
    assert (await customer.conversation())["bot_paused"] is False
    human = await client.post(
        f"/v1/stores/{store_id}/messages", json={"to": "+5491155550001", "text": "Hola Ana, soy Marta"}
    )
    assert human.status_code == 202, human.text
    assert human.json()["conversation_id"] == str(customer.conversation_id)
    paused = await customer.conversation()
    assert paused["bot_paused"] is True and paused["bot_paused_at"] is not None
    assert await customer.says("1") == []  # the bot stays quiet
    # A second human reply restarts the handoff clock.
    await client.post(f"/v1/stores/{store_id}/messages", json={"to": "+5491155550001", "text": "¿Algo más?"})
    assert (await customer.conversation())["bot_paused_at"] > paused["bot_paused_at"]
    # Resumed through the conversation's PATCH, the bot answers again.
    resumed = await client.patch(
        f"/v1/stores/{store_id}/conversations/{customer.conversation_id}", json={"bot_paused": False}
    )
    assert resumed.status_code == 200 and resumed.json()["bot_paused"] is False
    assert await customer.says("1")


async def test_a_notification_with_pause_bot_false_leaves_the_bot_answering(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await menu_store(client)
    await set_status(sessionmaker, store_id, StoreStatus.connected)
    customer = await Customer.open(sessionmaker, InboundHandler(sessionmaker, redis), store_id)
    notice = await client.post(
        f"/v1/stores/{store_id}/messages",
        json={"to": "+5491155550001", "text": "Tu pedido #42 está en camino", "pause_bot": False},
    )
    assert notice.status_code == 202, notice.text
    assert (await customer.conversation()) == {"bot_paused": False, "bot_paused_at": None}
    assert await customer.says("hola")
    # It does not resume a chat a person has, either.
    assert await customer.says(HANDOFF_OPTION)
    assert (await customer.conversation())["bot_paused"] is True
    await client.post(
        f"/v1/stores/{store_id}/messages",
        json={"to": "+5491155550001", "text": "Recordatorio", "pause_bot": False},
    )
    assert (await customer.conversation())["bot_paused"] is True


async def test_the_scope_is_messages_send(
    client: AsyncClient, make_client: ClientMaker, viewer_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await connected_store(client, sessionmaker)
    reader = make_client((await create_api_key(client, name="lector", scopes=["messages:read"]))["key"])
    for http in (reader, viewer_client):
        response = await http.post(f"/v1/stores/{store_id}/messages", json={"to": TO, "text": "hola"})
        assert response.status_code == 403, response.text
    assert await rows(sessionmaker, store_id) == []


async def test_expired_keys_are_purged(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_id = await connected_store(client, sessionmaker)
    url = f"/v1/stores/{store_id}/messages"
    for n in range(3):
        await client.post(url, json={"to": TO, "text": f"{n}"}, headers={"Idempotency-Key": f"k{n}"})
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key != "k2")
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    monkeypatch.setattr(sending_service, "PURGE_SHARE", 1.0)  # this send purges
    await client.post(url, json={"to": TO, "text": "nuevo"}, headers={"Idempotency-Key": "k3"})
    async with sessionmaker() as session:
        kept = set((await session.scalars(select(IdempotencyKey.key))).all())
    assert kept == {"k2", "k3"}
    assert len(await rows(sessionmaker, store_id)) == 4  # their messages stay
