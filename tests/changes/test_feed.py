"""GET /v1/stores/{store_id}/changes: the changes feed, its cursors, its long-poll, under concurrent writers."""

from __future__ import annotations

import asyncio
import base64
import random
import time
import uuid
from functools import partial
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text, update

from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message, Store
from tests.events.helpers import settled
from tests.messages.helpers import PHONE_CHAT, add_conversation, add_message
from tests.sessions.helpers import wait_for
from tests.support import insert_other_tenant_store, post_store

INSERT = text(
    "INSERT INTO messages (id, store_id, conversation_id, direction, wa_id, status, attempts, type, text) "
    "VALUES (:id, :store, :chat, 'out', :wa_id, 'pending', 0, 'text', 'hola')"
)
SET_STATUS = text("UPDATE messages SET status = :status WHERE id = :id")


async def changes(client: AsyncClient, store_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/stores/{store_id}/changes", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_kind_of_change_in_order(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store_id = await post_store(client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT, "Ana")
    message_id = await add_message(sessionmaker, store_id, chat, direction="out", status="pending")
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).where(Message.id == message_id).values(status="failed", error="no route")
        )
        await session.execute(
            update(Store)
            .where(Store.id == uuid.UUID(store_id))
            .values(status="error", status_reason="banned")
        )
        await session.execute(update(Conversation).where(Conversation.id == chat).values(bot_paused=True))

    await settled(sessionmaker)
    page = await changes(client, store_id)
    steps = [(item["kind"], item["status"], item["error"]) for item in page["items"]]
    assert steps == [
        ("message.created", "pending", None),
        ("message.status", "failed", "no route"),
        ("store.status", "error", "banned"),
        ("conversation.bot_paused", "paused", None),
    ]
    created, failed, store, paused = page["items"]
    assert created["message"]["id"] == str(message_id)
    assert (
        created["message"]["status"] == "failed"
    )  # the message as it is now; the item's status is the change's
    assert created["message"]["chat"] == "+5491155550001"
    assert (created["store"], created["conversation"]) == (None, None)
    assert store["store"] == {"id": store_id, "status": "error", "reason": "banned"}
    assert store["message"] is None
    assert paused["conversation"] == {"id": str(chat), "bot_paused": True}
    assert page["next_cursor"]

    # Resuming from an item's cursor gives what follows it, from next_cursor nothing (and a cursor again).
    after_failed = await changes(client, store_id, after=failed["cursor"])
    assert [item["kind"] for item in after_failed["items"]] == ["store.status", "conversation.bot_paused"]
    rest = await changes(client, store_id, after=page["next_cursor"])
    assert rest["items"] == [] and rest["next_cursor"]
    # Pages of one.
    first = await changes(client, store_id, limit=1)
    second = await changes(client, store_id, limit=1, after=first["next_cursor"])
    assert [first["items"][0]["kind"], second["items"][0]["kind"]] == ["message.created", "message.status"]

    # `now`: from the end: nothing of the past, then what commits next.
    now = await changes(client, store_id, after="now")
    assert now["items"] == [] and now["next_cursor"]
    later = await add_message(sessionmaker, store_id, chat)
    await settled(sessionmaker)
    news = await changes(client, store_id, after=now["next_cursor"])
    assert [(i["kind"], i["message"]["id"]) for i in news["items"]] == [("message.created", str(later))]

    only_messages = await changes(client, store_id, kinds=["message.created", "message.status"])
    kinds = [item["kind"] for item in only_messages["items"]]
    assert kinds == ["message.created", "message.status", "message.created"]
    only_store = await changes(client, store_id, kinds="store.status")
    assert [item["kind"] for item in only_store["items"]] == ["store.status"]


async def test_a_cursor_not_from_this_endpoint_is_a_422(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    for _ in range(3):
        await add_message(sessionmaker, store_id, chat)
    history_cursor = (await client.get(f"/v1/stores/{store_id}/messages", params={"limit": 1})).json()[
        "next_cursor"
    ]
    assert history_cursor
    for bad in [history_cursor, "bm90LWpzb24", "WzEsMl0", "WyJjaGciLC0xLDBd", "x" * 20]:
        # (not JSON, [1,2], ["chg",-1,0], garbage)
        response = await client.get(f"/v1/stores/{store_id}/changes", params={"after": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    for params in [{"wait": 31}, {"limit": 0}, {"limit": 501}, {"kinds": "message.deleted"}]:
        response = await client.get(f"/v1/stores/{store_id}/changes", params=params)
        assert response.status_code == 422, params


async def test_cursors_are_sealed_and_bound_to_their_store(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    """A cursor's (xid, id) counts every tenant's changes on the server: it must not be readable, and a
    cursor of one store means nothing to another."""
    mine, sibling = await post_store(client), await post_store(client, "Otra")
    chat = await add_conversation(sessionmaker, mine, PHONE_CHAT)
    await add_message(sessionmaker, mine, chat)
    await settled(sessionmaker)
    page = await changes(client, mine)
    cursors = [item["cursor"] for item in page["items"]] + [page["next_cursor"]]
    for cursor in cursors:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        assert b"chg" not in raw and not raw.startswith(b"[")
    again = await changes(client, mine)
    # One position, one cursor (deterministic sealing). (next_cursor may move on: the horizon moves.)
    assert [item["cursor"] for item in again["items"]] == [item["cursor"] for item in page["items"]]
    # Resuming with it works on its own store, and is a 422 on a sibling store of the same tenant.
    assert (await changes(client, mine, after=page["items"][0]["cursor"]))["next_cursor"]
    response = await client.get(f"/v1/stores/{sibling}/changes", params={"after": page["next_cursor"]})
    assert response.status_code == 422
    # One flipped character and it is no cursor at all.
    forged = (
        page["next_cursor"][:-2] + ("A" if page["next_cursor"][-2] != "A" else "B") + page["next_cursor"][-1]
    )
    response = await client.get(f"/v1/stores/{mine}/changes", params={"after": forged})
    assert response.status_code == 422


async def test_only_the_stores_own_changes_and_never_another_tenants(
    client: AsyncClient, other_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    mine, sibling = await post_store(client), await post_store(client, "Otra")
    stranger = await insert_other_tenant_store(sessionmaker)
    for store in (mine, sibling, stranger):
        await add_message(sessionmaker, store, await add_conversation(sessionmaker, store, PHONE_CHAT))
    await settled(sessionmaker)
    page = await changes(client, mine)
    assert [item["message"]["store_id"] for item in page["items"]] == [mine]
    for store in (str(stranger),):
        response = await client.get(f"/v1/stores/{store}/changes")
        assert response.status_code == 404
    response = await other_client.get(f"/v1/stores/{mine}/changes", params={"after": page["next_cursor"]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "store_not_found"


async def test_long_poll_answers_on_a_commit_and_times_out_empty(
    app: FastAPI, client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    start = (await changes(client, store_id))["next_cursor"]
    waiter = app.state.mostrador.changes_waiter

    began = time.monotonic()
    empty = await changes(client, store_id, after=start, wait=0.4)
    assert empty["items"] == [] and time.monotonic() - began >= 0.4
    assert empty["next_cursor"]
    assert waiter.waiting == 0

    # The change is readable once the horizon passes it: at once, unless a transaction elsewhere on the shared
    # server holds the horizon back. Then the poll may legitimately time out empty: try again (a few times).
    after = empty["next_cursor"]
    for _attempt in range(5):
        poll = asyncio.create_task(changes(client, store_id, after=after, wait=30))
        await wait_for(partial(_parked, waiter, poll), interval=0.01, what="the request parked in the poller")
        message_id = await add_message(sessionmaker, store_id, chat)
        await settled(sessionmaker)
        readable_at = time.monotonic()
        page = await poll
        if page["items"]:
            break
        after = (await changes(client, store_id, after=page["next_cursor"]))["next_cursor"]
    assert [item["message"]["id"] for item in page["items"]] == [str(message_id)]
    # Answered within a few poller ticks of the change becoming readable, not at the end of its 30 s.
    assert time.monotonic() - readable_at < 5
    assert waiter.waiting == 0

    # Another store's commit does not answer it; a kind it does not ask for neither.
    other = await post_store(client, "Otra")
    poll = asyncio.create_task(
        changes(client, store_id, after=page["next_cursor"], wait=1, kinds="message.status")
    )
    await wait_for(lambda: _parked(waiter, poll), interval=0.01, what="the request parked in the poller")
    await add_message(sessionmaker, other, await add_conversation(sessionmaker, other, PHONE_CHAT))
    await add_message(sessionmaker, store_id, chat)  # a message.created: not asked for
    assert (await poll)["items"] == []


async def _parked(waiter: Any, poll: asyncio.Task[Any]) -> bool:
    assert not poll.done(), poll.result()
    return bool(waiter.waiting)


async def test_a_resuming_reader_gets_the_truth_under_concurrent_out_of_order_writers(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    """Writers whose transactions take their ids early and commit late, in any order, some rolled back; a
    reader that follows the feed, and readers that resume from random earlier cursors: each sees every
    committed change exactly once, in one order."""
    store_id = await post_store(client)
    chats = [
        await add_conversation(sessionmaker, store_id, f"54911555{n:05d}@s.whatsapp.net") for n in range(4)
    ]
    truth: list[tuple[str, str, str]] = []  # (message id, kind, status) of every committed change
    rng = random.Random(12)

    async def writer(chat: uuid.UUID) -> None:
        for _ in range(20):
            message_id = uuid.uuid4()
            async with sessionmaker() as session:
                await session.begin()
                await session.execute(
                    INSERT, {"id": message_id, "store": store_id, "chat": chat, "wa_id": message_id.hex}
                )
                await asyncio.sleep(rng.uniform(0, 0.03))  # holds its xid and event ids while others commit
                if rng.random() < 0.2:
                    await session.rollback()
                    continue
                await session.commit()
            truth.append((str(message_id), "message.created", "pending"))
            for status in ("sending", "sent"):
                async with sessionmaker() as session:
                    await session.begin()
                    await session.execute(SET_STATUS, {"id": message_id, "status": status})
                    await asyncio.sleep(rng.uniform(0, 0.02))
                    if status == "sent" and rng.random() < 0.2:
                        await session.rollback()
                        break
                    await session.commit()
                truth.append((str(message_id), "message.status", status))

    def key(item: dict[str, Any]) -> tuple[str, str, str]:
        return (item["message"]["id"], item["kind"], item["status"])

    async def read_from(after: str | None, *, limit: int) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
            page = await changes(client, store_id, **params)
            items += page["items"]
            after = page["next_cursor"]
            if not page["items"]:
                return items, after

    writers = asyncio.gather(*(writer(chat) for chat in chats))
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    resumed = 0
    while not writers.done() or resumed < 3:
        if writers.done():  # a transaction elsewhere on the shared server may have held the horizon back
            await settled(sessionmaker)
        page, cursor = await read_from(cursor, limit=rng.randint(1, 9))
        seen += page
        if len(seen) > 2 and rng.random() < 0.3:
            # Resume from a random earlier cursor: exactly what came after it, then possibly more.
            k = rng.randrange(len(seen))
            again, _ = await read_from(seen[k]["cursor"], limit=rng.randint(1, 9))
            assert [i["cursor"] for i in again[: len(seen) - k - 1]] == [i["cursor"] for i in seen[k + 1 :]]
            resumed += 1
        await asyncio.sleep(0.005)
    await writers
    await settled(sessionmaker)
    page, cursor = await read_from(cursor, limit=50)
    seen += page

    assert resumed > 0
    cursors = [item["cursor"] for item in seen]
    assert len(cursors) == len(set(cursors))
    keys = [key(item) for item in seen]
    assert len(keys) == len(set(keys))  # no change twice
    assert sorted(keys) == sorted(truth)  # and every committed one, nothing rolled back
    # Each message's own changes in the order they happened.
    for message_id in {k[0] for k in truth}:
        statuses = [k[2] for k in keys if k[0] == message_id]
        assert statuses == ["pending", "sending", "sent"][: len(statuses)]
