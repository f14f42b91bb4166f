"""The session manager with the simulator, in this process, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.contracts import (
    OUTBOX_GROUP,
    SIM_CONFLICTS_KEY,
    STORES_CHANGED_CHANNEL,
    messages_stream,
    outbox_entry,
    outbox_stream,
    sim_control_stream,
    sim_device_key,
    sim_inbound_stream,
    sim_outbound_stream,
    sim_pairing_key,
    status_reason_code,
    store_events_channel,
    store_qr_key,
)
from app.kit.db import AsyncSessionMaker, transaction
from app.models import Conversation, DesiredState, Message, Store
from sessions.manager import SessionManager
from sessions.outbound import INTERRUPTED
from tests.sessions.helpers import (
    create_store,
    drain_events,
    fast_settings,
    get_store,
    messages,
    running_manager,
    wait_for,
    wait_status,
)

CUSTOMER = "5491166660000@s.whatsapp.net"


@pytest.fixture
async def manager(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> AsyncIterator[SessionManager]:
    async with running_manager(fast_settings(settings), sessionmaker, redis, redis_url) as manager:
        yield manager


async def _inject(
    redis: Redis, store_id: uuid.UUID, text: str, wa_id: str | None = None, ts: int = 1764300000000
) -> str:
    wa_id = wa_id or uuid.uuid4().hex[:20].upper()
    fields = {"id": wa_id, "from": CUSTOMER, "name": "Ana", "text": text, "ts": str(ts)}
    await redis.xadd(sim_inbound_stream(store_id), fields)  # type: ignore[arg-type]
    return wa_id


async def _queue_reply(sessionmaker: AsyncSessionMaker, redis: Redis, store_id: uuid.UUID, text: str,
                       status: str = "pending") -> uuid.UUID:  # fmt: skip
    async with transaction(sessionmaker) as session:
        conversation = (
            await session.execute(select(Conversation).where(Conversation.store_id == store_id))
        ).scalar_one_or_none()
        if conversation is None:
            conversation = Conversation(store_id=store_id, chat_jid=CUSTOMER, bot_state={})
            session.add(conversation)
            await session.flush()
        message = Message(
            store_id=store_id, conversation_id=conversation.id, direction="out", text=text, status=status,
            wa_id="PREV" + uuid.uuid4().hex[:8] if status == "sending" else None,
        )  # fmt: skip
        session.add(message)
        await session.flush()
        message_id = message.id
    await redis.xadd(outbox_stream(store_id), outbox_entry(message_id=message_id, chat_jid=CUSTOMER))  # type: ignore[arg-type]
    return message_id


async def test_pairing_with_a_scanned_qr_connects_the_store(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(store_events_channel(store_id))
        await redis.publish(STORES_CHANGED_CHANNEL, str(store_id))
        await wait_status(sessionmaker, store_id, "linking")
        qr = json.loads(await wait_for(lambda: redis.get(store_qr_key(store_id)), what="a QR code"))
        pairing = json.loads(await wait_for(lambda: redis.get(sim_pairing_key(store_id)), what="sim pairing"))
        assert qr["code"] == pairing["code"]

        await redis.xadd(
            sim_control_stream(store_id), {"kind": "scan", "phone": "+5491155550000", "code": qr["code"]}
        )
        store = await wait_status(sessionmaker, store_id, "connected")
        assert store.phone_number == "+5491155550000"
        assert store.device_jid is not None and store.device_jid.startswith("5491155550000:")
        assert await redis.get(store_qr_key(store_id)) is None  # no stale QR once paired

        seen = await drain_events(pubsub)
    assert [e["type"] for e in seen][:2] == ["status", "qr"]
    connected = {"status": "connected", "phone_number": "+5491155550000", "reason": None, "reason_code": None}
    assert {"type": "status", **connected} in seen


async def test_qr_codes_rotate_then_the_pairing_times_out(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, sim_qr_first_seconds=0.6, sim_qr_next_seconds=0.3, sim_qr_count=3)
    store_id = await create_store(sessionmaker, redis)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(store_events_channel(store_id))
        async with running_manager(quick, sessionmaker, redis, redis_url):
            store = await wait_status(sessionmaker, store_id, "error", timeout=10)
        codes = [event["code"] for event in await drain_events(pubsub, quiet=0.3) if event["type"] == "qr"]
    assert len(codes) == 3 and len(set(codes)) == 3
    assert store.status_reason is not None and "QR code not scanned in time" in store.status_reason
    assert status_reason_code(store.status, store.status_reason) == "qr_expired"
    assert await redis.get(store_qr_key(store_id)) is None


async def test_inbound_messages_are_recorded_once_and_queued(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550001")
    await wait_status(sessionmaker, store_id, "connected")
    first = await _inject(redis, store_id, "hola")
    await _inject(redis, store_id, "hola", wa_id=first)  # WhatsApp redelivers the same message
    await _inject(redis, store_id, "quiero un turno")

    rows = await wait_for(
        lambda: _if_len(messages(sessionmaker, store_id), 2, lambda r: all(m.status == "queued" for m in r)),
        what="two queued messages",
    )
    assert [m.text for m in rows] == ["hola", "quiero un turno"]
    assert rows[0].wa_id == first and rows[0].direction == "in" and rows[0].sender_jid == CUSTOMER
    async with sessionmaker() as session:
        conversation = (await session.execute(select(Conversation))).scalar_one()
    assert conversation.chat_jid == CUSTOMER and conversation.customer_name == "Ana"

    entries = await redis.xrange(messages_stream(store_id))
    assert len(entries) == 2
    task = json.loads(entries[0][1]["data"])
    assert task["task_name"] == "inbound.handle"
    # The entry names the row's conversation and place in it: the worker need not look the row up.
    assert task["kwargs"] == {
        "message_id": str(rows[0].id),
        "chat_jid": CUSTOMER,
        "wa_id": first,
        "conversation_id": str(conversation.id),
        "seq": rows[0].seq,
    }
    # The stream's consumer group is the worker's to create (none runs here); the session manager created the
    # group of the outbox it reads when it took the store.
    assert await redis.xinfo_groups(messages_stream(store_id)) == []
    assert [g["name"] for g in await redis.xinfo_groups(outbox_stream(store_id))] == [OUTBOX_GROUP]
    # Every inbound entry was acknowledged to the (simulated) network after it was committed.
    assert (await redis.xpending(sim_inbound_stream(store_id), "device"))["pending"] == 0


async def _done(task: asyncio.Task[None]) -> bool:
    return task.done()


async def _if_len(rows_awaitable, n, check=lambda rows: True):  # type: ignore[no-untyped-def]
    rows = await rows_awaitable
    return rows if len(rows) == n and check(rows) else None


async def test_replies_are_sent_in_order_and_receipts_move_them_forward(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550002")
    await wait_status(sessionmaker, store_id, "connected")
    ids = [await _queue_reply(sessionmaker, redis, store_id, f"respuesta {n}") for n in range(5)]

    async def all_read() -> list[Message] | None:
        rows = [m for m in await messages(sessionmaker, store_id) if m.id in ids]
        # Final: read, and the send's own outcome (time, id) written too; a receipt may come before it.
        return rows if all(m.status == "read" and m.wa_timestamp is not None for m in rows) else None

    rows = await wait_for(all_read, what="replies sent, delivered and read")
    sent = await redis.xrange(sim_outbound_stream(store_id))
    assert [fields["text"] for _, fields in sent] == [f"respuesta {n}" for n in range(5)]
    assert [fields["id"] for _, fields in sent] == [m.wa_id for m in sorted(rows, key=lambda m: m.seq)]
    assert all(m.wa_timestamp is not None for m in rows)
    assert (await redis.xpending(outbox_stream(store_id), OUTBOX_GROUP))["pending"] == 0


async def test_a_failed_send_is_retried_and_sent_once(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550003")
    await wait_status(sessionmaker, store_id, "connected")
    await redis.xadd(sim_control_stream(store_id), {"kind": "send_failure"})
    await wait_for(lambda: _fail_flag(manager, store_id), what="the fault to arrive")
    message_id = await _queue_reply(sessionmaker, redis, store_id, "su turno está confirmado")

    async def sent() -> Message | None:
        rows = [m for m in await messages(sessionmaker, store_id) if m.id == message_id]
        return rows[0] if rows and rows[0].status in ("sent", "delivered", "read") else None

    message = await wait_for(sent, what="the reply sent after a retry")
    assert message.attempts == 2
    assert len(await redis.xrange(sim_outbound_stream(store_id))) == 1


async def _fail_flag(manager: SessionManager, store_id: uuid.UUID) -> bool:
    session = manager.sessions.get(store_id)
    return bool(session and getattr(session.connection, "fail_next_send", False))


async def test_a_send_interrupted_by_a_crash_is_not_repeated(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550004")
    await wait_status(sessionmaker, store_id, "connected")
    interrupted = await _queue_reply(sessionmaker, redis, store_id, "maybe already sent", status="sending")
    after = await _queue_reply(sessionmaker, redis, store_id, "next reply")

    async def settled() -> list[Message] | None:
        rows = {m.id: m for m in await messages(sessionmaker, store_id)}
        return list(rows.values()) if rows[after].status in ("sent", "delivered", "read") else None

    rows = {m.id: m for m in await wait_for(settled, what="the next reply sent")}
    assert rows[interrupted].status == "failed" and rows[interrupted].error == INTERRUPTED
    assert [f["text"] for _, f in await redis.xrange(sim_outbound_stream(store_id))] == ["next reply"]


async def test_reconnects_after_a_dropped_connection(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550005")
    await wait_status(sessionmaker, store_id, "connected")
    connection = manager.sessions[store_id].connection
    old_consumer = connection._consumer  # type: ignore[attr-defined]  # the simulator's entry consumer
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(store_events_channel(store_id))
        await redis.xadd(sim_control_stream(store_id), {"kind": "disconnect"})
        statuses = [e["status"] for e in await drain_events(pubsub, until="connected")]
    assert statuses[-1] == "connected", f"no reconnect; statuses seen: {statuses}"
    assert statuses[0] == "reconnecting"
    # One consumer of the connection's entries: the closed connection's ended (two would reorder a chat).
    assert old_consumer is not None and connection._consumer is not old_consumer  # type: ignore[attr-defined]
    await wait_for(lambda: _done(old_consumer), what="the closed connection's consumer to end")
    # A message sent while it was away arrives after the reconnect.
    await _inject(redis, store_id, "¿siguen abiertos?")
    await wait_for(
        lambda: _if_len(messages(sessionmaker, store_id), 1), what="the message after reconnecting"
    )
    assert await redis.lrange(SIM_CONFLICTS_KEY, 0, -1) == []


async def test_logout_from_the_phone_stops_reconnecting(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550006")
    await wait_status(sessionmaker, store_id, "connected")
    await redis.xadd(sim_control_stream(store_id), {"kind": "logout"})
    store = await wait_status(sessionmaker, store_id, "logged_out")
    assert store.device_jid is None and store.status_reason == "logged out from the phone"
    await manager.reconcile()
    assert store_id not in manager.sessions
    assert (await get_store(sessionmaker, store_id)).status == "logged_out"


async def test_logout_on_request_unlinks_the_device(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550007")
    await wait_status(sessionmaker, store_id, "connected")
    device_jid = (await get_store(sessionmaker, store_id)).device_jid
    assert device_jid is not None
    async with transaction(sessionmaker) as session:
        store = await session.get(Store, store_id)
        assert store is not None
        store.desired_state = DesiredState.logged_out.value
    await redis.publish(STORES_CHANGED_CHANNEL, str(store_id))
    store = await wait_status(sessionmaker, store_id, "logged_out")
    assert store.device_jid is None
    assert await redis.get(sim_device_key(device_jid)) is None  # the phone no longer lists it


async def test_a_removed_device_reports_logged_out_on_resume(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550008")
    async with transaction(sessionmaker) as session:
        store = await session.get(Store, store_id)
        assert store is not None and store.device_jid is not None
        await redis.delete(sim_device_key(store.device_jid))
    store = await wait_status(sessionmaker, store_id, "logged_out")
    assert store.status_reason == "this device was logged out from the phone"
