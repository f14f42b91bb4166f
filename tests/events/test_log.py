"""The change log: triggers write an event for every change, readable in an order a resuming reader can trust."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text, update

from app.events.repository import START, committed_after, history, position_of
from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message, Store
from tests.events.helpers import settled
from tests.messages.helpers import PHONE_CHAT, add_conversation, add_message
from tests.support import insert_other_tenant_store


async def test_every_change_is_logged_in_its_own_transaction(sessionmaker: AsyncSessionMaker) -> None:
    store_id = await insert_other_tenant_store(sessionmaker)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    message_id = await add_message(sessionmaker, store_id, chat, direction="out", status="pending")
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Message).where(Message.id == message_id).values(status="sending"))
        await session.execute(update(Message).where(Message.id == message_id).values(text="same status"))
        await session.execute(
            update(Message).where(Message.id == message_id).values(status="failed", error="boom")
        )
        await session.execute(update(Store).where(Store.id == store_id).values(status="connected"))
        await session.execute(update(Conversation).where(Conversation.id == chat).values(bot_paused=True))
    # A change that rolls back leaves no event.
    async with sessionmaker() as session:
        await session.execute(update(Message).where(Message.id == message_id).values(status="sent"))
        await session.rollback()

    await settled(sessionmaker)
    async with sessionmaker() as session:
        events = await committed_after(session, [store_id])
        steps = [(e.kind, e.status, e.error) for e in events]
        assert steps == [
            ("message.created", "pending", None),
            ("message.status", "sending", None),
            ("message.status", "failed", "boom"),
            ("store.status", "connected", None),
            ("conversation.bot_paused", "paused", None),
        ]
        assert [(e.kind, e.status) for e in await history(session, message_id)] == [
            ("message.created", "pending"),
            ("message.status", "sending"),
            ("message.status", "failed"),
        ]
        # The three updates of the one transaction share its xid and keep their order.
        assert len({e.xid for e in events[1:]}) == 1


async def test_a_transaction_still_running_holds_back_everything_after_it(
    sessionmaker: AsyncSessionMaker,
) -> None:
    """Ids are assigned at insert, not at commit: a reader must not pass a row whose transaction is open."""
    store_id = await insert_other_tenant_store(sessionmaker)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    async with sessionmaker() as slow:
        await slow.begin()
        await slow.execute(
            text(
                "INSERT INTO messages (id, store_id, conversation_id, direction, status, attempts, type) "
                "VALUES (:id, :store, :chat, 'in', 'queued', 0, 'text')"
            ),
            {"id": uuid.uuid4(), "store": store_id, "chat": chat},
        )
        # A later transaction commits first.
        await add_message(sessionmaker, store_id, chat)
        async with sessionmaker() as reader:
            assert await committed_after(reader, [store_id]) == []
        await slow.commit()
    await settled(sessionmaker)
    async with sessionmaker() as reader:
        first = await committed_after(reader, [store_id], limit=1)
        rest = await committed_after(reader, [store_id], position_of(first[0]))
        statuses = [e.status for e in first + rest]
        assert statuses == ["queued", "handled"]  # the slow one first: it began (took its xid) first


async def test_a_resuming_reader_sees_every_event_once_under_concurrent_writers(
    sessionmaker: AsyncSessionMaker,
) -> None:
    store_id = await insert_other_tenant_store(sessionmaker)
    chats = [
        await add_conversation(sessionmaker, store_id, f"54911555{n:05d}@s.whatsapp.net") for n in range(6)
    ]
    written: list[uuid.UUID] = []

    async def writer(chat: uuid.UUID) -> None:
        for _ in range(25):
            written.append(await add_message(sessionmaker, store_id, chat))

    writers = asyncio.gather(*(writer(chat) for chat in chats))
    seen: list[uuid.UUID] = []
    position = START
    while True:
        async with sessionmaker() as session:
            page = await committed_after(session, [store_id], position, limit=7)
        if page:
            position = position_of(page[-1])
            seen.extend(e.message_id for e in page if e.message_id is not None)
        elif writers.done():
            await settled(sessionmaker)
            async with sessionmaker() as session:
                if not await committed_after(session, [store_id], position):
                    break
        await asyncio.sleep(0.005)
    await writers
    assert len(seen) == len(set(seen)) == 150
    assert set(seen) == set(written)


async def test_events_go_with_their_store(sessionmaker: AsyncSessionMaker) -> None:
    store_id = await insert_other_tenant_store(sessionmaker)
    chat = await add_conversation(sessionmaker, store_id, PHONE_CHAT)
    await add_message(sessionmaker, store_id, chat)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM stores WHERE id = :id"), {"id": store_id})
    async with sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM events")) == 0
