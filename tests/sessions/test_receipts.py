"""Receipts (delivered, read) are group-committed: many stores' receipts in one UPDATE, statuses only forward."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy import select

from app.kit.db import AsyncSessionMaker, single_statement, transaction
from app.models import Conversation, Message, MessageStatus
from sessions.receipts import ReceiptRecorder
from sessions.repository import SendOutcome, SessionsRepository
from tests.sessions.helpers import create_store

CUSTOMER = "5491166662222@s.whatsapp.net"


class CountingRecorder(ReceiptRecorder):
    """Counts the UPDATE statements (one per flush); the statements themselves run on the real database."""

    flushes = 0

    async def _apply_batch(self, batch: list[tuple[uuid.UUID, str, str]]) -> list[None]:
        self.flushes += 1
        return await super()._apply_batch(batch)


async def _rows(
    sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, rows: list[tuple[str, str | None, str]]
) -> list[uuid.UUID]:
    """Messages of one chat as (direction, wa_id, status); returns their ids in order."""
    async with transaction(sessionmaker) as session:
        conversation = Conversation(store_id=store_id, chat_jid=CUSTOMER, bot_state={})
        session.add(conversation)
        await session.flush()
        messages = [
            Message(
                store_id=store_id,
                conversation_id=conversation.id,
                direction=direction,
                wa_id=wa_id,
                text="hola",
                status=status,
            )
            for direction, wa_id, status in rows
        ]
        session.add_all(messages)
        await session.flush()
        return [m.id for m in messages]


async def _statuses(sessionmaker: AsyncSessionMaker, ids: list[uuid.UUID]) -> list[str]:
    async with sessionmaker() as session:
        found = dict(
            (await session.execute(select(Message.id, Message.status).where(Message.id.in_(ids)))).all()
        )
    return [found[i] for i in ids]


async def test_many_receipts_of_many_stores_share_few_statements_and_end_right(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    stores = [await create_store(sessionmaker, redis, name=f"Store {n}") for n in range(4)]
    per_store = 50
    sent: dict[uuid.UUID, list[uuid.UUID]] = {}
    for store_id in stores:
        # The same WhatsApp ids in every store: a receipt is for its own store's message only.
        sent[store_id] = await _rows(
            sessionmaker, store_id, [("out", f"3EB0{i:04d}", "sent") for i in range(per_store)]
        )
    recorder = CountingRecorder(sessionmaker)
    try:
        # Stores 0-2 get delivered and read for every message, in random order, all at once; store 3 none.
        receipts = [
            (store_id, f"3EB0{i:04d}", kind)
            for store_id in stores[:3]
            for i in range(per_store)
            for kind in ("delivered", "read")
        ]
        random.shuffle(receipts)
        await asyncio.gather(*(recorder.record(s, [w], k) for s, w, k in receipts))
        assert recorder.flushes <= 3, f"{len(receipts)} receipts took {recorder.flushes} statements"
        for store_id in stores[:3]:
            assert await _statuses(sessionmaker, sent[store_id]) == ["read"] * per_store
        assert await _statuses(sessionmaker, sent[stores[3]]) == ["sent"] * per_store
    finally:
        recorder.close()


async def test_receipts_only_move_statuses_forward(sessionmaker: AsyncSessionMaker, redis: Redis) -> None:
    store_id = await create_store(sessionmaker, redis)
    sending, sent, delivered, read, failed, pending, inbound = await _rows(
        sessionmaker,
        store_id,
        [
            ("out", "A1", "sending"),  # the receipt came before the send's outcome was committed
            ("out", "A2", "sent"),
            ("out", "A3", "delivered"),
            ("out", "A4", "read"),
            ("out", "A5", "failed"),
            ("out", None, "pending"),
            ("in", "A7", "handled"),  # a customer's message with an id a receipt names: not ours to move
        ],
    )
    recorder = ReceiptRecorder(sessionmaker)
    try:
        await recorder.record(store_id, ["A1", "A2", "A3", "A4", "A5", "A7"], "delivered")  # late for A4
        assert await _statuses(sessionmaker, [sending, sent, delivered, read, failed, pending, inbound]) == [
            "delivered", "delivered", "delivered", "read", "failed", "pending", "handled",
        ]  # fmt: skip
        await recorder.record(store_id, ["A2"], "played")  # a voice note played: read
        await recorder.record(store_id, ["A2", "A3"], "delivered")  # late again
        assert await _statuses(sessionmaker, [sent, delivered]) == ["read", "delivered"]
        await recorder.record(store_id, ["A3"], "bogus")  # an unknown kind changes nothing
        assert await _statuses(sessionmaker, [delivered]) == ["delivered"]
    finally:
        recorder.close()


async def test_a_send_outcome_after_its_receipt_keeps_the_status_and_records_the_send(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    """The network may report a message delivered before the send's outcome is committed (the outcome waits
    for its batch): the outcome then writes the send time and WhatsApp id and leaves `delivered` as it is; a
    late `failed` for a message the phone has received changes nothing."""
    store_id = await create_store(sessionmaker, redis)
    delivered, read = await _rows(
        sessionmaker, store_id, [("out", "3EB0A", "sending"), ("out", "3EB0B", "sending")]
    )
    recorder = ReceiptRecorder(sessionmaker)
    try:
        await asyncio.gather(
            recorder.record(store_id, ["3EB0A"], "delivered"), recorder.record(store_id, ["3EB0B"], "read")
        )
    finally:
        recorder.close()
    sent_at = datetime.now(UTC)
    async with single_statement(sessionmaker) as session:
        changed = await SessionsRepository(session).finish_sending(
            [
                SendOutcome(delivered, MessageStatus.sent, sent_at=sent_at, wa_id="3EB0A"),
                SendOutcome(read, MessageStatus.failed, error="timed out"),
            ]
        )
    assert changed == [True, False]
    async with sessionmaker() as session:
        rows = {m.id: m for m in (await session.scalars(select(Message).where(Message.store_id == store_id)))}
    assert (rows[delivered].status, rows[delivered].wa_timestamp, rows[delivered].error) == (
        "delivered",
        sent_at,
        None,
    )
    assert (rows[read].status, rows[read].error) == ("read", None)
