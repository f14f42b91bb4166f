"""From-me messages (the owner writing from the phone) in the session manager's inbound recorder."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select

from app.contracts import messages_stream
from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message
from sessions.drivers.base import InboundMessage
from sessions.inbound import InboundRecorder
from tests.sessions.helpers import create_store

CHAT = "5491166660000@s.whatsapp.net"
OWNER = "5493400000077@s.whatsapp.net"


def _message(text: str, *, from_me: bool, at: datetime, wa_id: str | None = None) -> InboundMessage:
    return InboundMessage(
        wa_id=wa_id or uuid.uuid4().hex.upper(),
        chat_jid=CHAT,
        sender_jid=OWNER if from_me else CHAT,
        timestamp=at,
        type="text",
        text=text,
        from_me=from_me,
    )


async def test_a_batch_keeps_its_order_and_only_customers_messages_reach_the_worker(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis)
    recorder = InboundRecorder(sessionmaker, redis)
    now = datetime.now(UTC)
    batch = [
        _message("hola", from_me=False, at=now - timedelta(seconds=30)),
        _message("Hola, soy Marta", from_me=True, at=now - timedelta(seconds=20)),
        _message(
            "Hola, soy Marta", from_me=True, at=now - timedelta(seconds=20)
        ),  # redelivered: same id below
        _message("gracias", from_me=False, at=now - timedelta(seconds=10)),
    ]
    batch[2] = batch[1]
    try:
        await recorder.save_many(store_id, batch)
        await recorder.save_many(store_id, batch)  # the whole batch delivered again: nothing new
    finally:
        recorder.close()
    async with sessionmaker() as session:
        rows = (
            await session.scalars(select(Message).where(Message.store_id == store_id).order_by(Message.seq))
        ).all()
        chat = await session.scalar(select(Conversation).where(Conversation.store_id == store_id))
    assert [(m.direction, m.status, m.text) for m in rows] == [
        ("in", "queued", "hola"),
        ("out", "sent", "Hola, soy Marta"),
        ("in", "queued", "gracias"),
    ]
    assert rows[1].wa_id == batch[1].wa_id and rows[1].sender_jid == OWNER
    assert chat is not None and chat.bot_paused is True
    # The clock starts when the owner wrote (the message's time), not when we heard of it.
    assert chat.bot_paused_at == batch[1].timestamp
    entries = await redis.xrange(messages_stream(store_id))
    queued = [json.loads(fields["data"])["kwargs"]["message_id"] for _, fields in entries]
    assert queued == [str(rows[0].id), str(rows[2].id)]


async def test_an_old_message_from_the_phone_does_not_move_the_clock_back(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis)
    recorder = InboundRecorder(sessionmaker, redis)
    now = datetime.now(UTC)
    try:
        await recorder.save(store_id, _message("recién", from_me=True, at=now - timedelta(minutes=1)))
        await recorder.save(store_id, _message("de ayer", from_me=True, at=now - timedelta(days=1)))
        await recorder.save(store_id, _message("del futuro", from_me=True, at=now + timedelta(days=1)))
    finally:
        recorder.close()
    async with sessionmaker() as session:
        chat = await session.scalar(select(Conversation).where(Conversation.store_id == store_id))
    assert chat is not None and chat.bot_paused is True and chat.bot_paused_at is not None
    assert (
        now - timedelta(minutes=1) < chat.bot_paused_at <= datetime.now(UTC)
    )  # the future one capped at now
