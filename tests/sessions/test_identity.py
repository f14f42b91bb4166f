"""One customer, one conversation: a chat seen under its phone JID and its LID (WhatsApp gives either, the
other beside it or not) is kept as one conversation with both identifiers, by the inbound hot path."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.contracts import messages_stream, sim_inbound_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.models import Conversation, Message
from sessions.drivers.base import InboundMessage
from sessions.manager import SessionManager
from sessions.repository import SavedInbound, SessionsRepository
from tests.sessions.helpers import create_store, fast_settings, running_manager, wait_for, wait_status

PHONE = "5491166660000@s.whatsapp.net"
LID = "98765432109876@lid"
OTHER_PHONE = "5491177770000@s.whatsapp.net"
OTHER_LID = "11112222333344@lid"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def inbound(chat: str, alt: str | None = None, text: str = "hola") -> InboundMessage:
    return InboundMessage(
        wa_id=uuid.uuid4().hex.upper(), chat_jid=chat, chat_alt_jid=alt, sender_jid=chat, timestamp=T0,
        type="text", text=text,
    )  # fmt: skip


async def save(
    sessionmaker: AsyncSessionMaker, store_id: uuid.UUID, *messages: InboundMessage
) -> list[SavedInbound | None]:
    """One batch, one statement, as the group commit writes it."""
    async with transaction(sessionmaker) as session:
        return await SessionsRepository(session).save_inbound([(store_id, m) for m in messages])


async def conversations(
    sessionmaker: AsyncSessionMaker, store_id: uuid.UUID
) -> list[tuple[str, str | None, int]]:
    """(key, other identifier, messages) of each of the store's conversations."""
    async with sessionmaker() as session:
        chats = (await session.scalars(select(Conversation).where(Conversation.store_id == store_id))).all()
        counts = {
            chat.id: len(
                (await session.scalars(select(Message.id).where(Message.conversation_id == chat.id))).all()
            )
            for chat in chats
        }
    return sorted((chat.chat_jid, chat.alt_jid, counts[chat.id]) for chat in chats)


async def test_phone_first_then_the_lid_alone_is_one_conversation(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis)
    assert [r.chat_jid for r in await save(sessionmaker, store_id, inbound(PHONE)) if r] == [PHONE]
    assert await conversations(sessionmaker, store_id) == [(PHONE, None, 1)]
    # WhatsApp now names the chat by LID and gives the number beside it: the LID is learned.
    written = await save(sessionmaker, store_id, inbound(PHONE, LID))
    assert written[0] is not None and written[0].chat_jid == PHONE
    # Later, the LID alone (the number not given): the same conversation, and the stream names it by its key.
    written = await save(sessionmaker, store_id, inbound(LID))
    assert written[0] is not None and written[0].chat_jid == PHONE
    assert await conversations(sessionmaker, store_id) == [(PHONE, LID, 3)]


async def test_lid_first_then_the_number_is_one_conversation_shown_by_its_number(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis)
    await save(sessionmaker, store_id, inbound(LID))  # the number unknown at first
    assert await conversations(sessionmaker, store_id) == [(LID, None, 1)]
    written = await save(sessionmaker, store_id, inbound(PHONE, LID))  # now WhatsApp gives it
    assert written[0] is not None and written[0].chat_jid == LID  # the conversation keeps its key
    await save(sessionmaker, store_id, inbound(PHONE))  # and the number alone finds it too
    assert await conversations(sessionmaker, store_id) == [(LID, PHONE, 3)]


async def test_both_identifiers_in_one_batch_of_new_chats_make_one_conversation(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis)
    written = await save(
        sessionmaker,
        store_id,
        inbound(LID, text="1"),
        inbound(PHONE, LID, text="2"),
        inbound(OTHER_PHONE, text="3"),
        inbound(OTHER_LID, text="4"),  # a LID nobody named: a chat of its own
        inbound(LID, text="5"),
    )
    assert [w.chat_jid if w else None for w in written] == [PHONE, PHONE, OTHER_PHONE, OTHER_LID, PHONE]
    assert await conversations(sessionmaker, store_id) == [
        (OTHER_LID, None, 1),
        (PHONE, LID, 3),
        (OTHER_PHONE, None, 1),
    ]
    # Batch order is the chat's order (`seq`), whichever identifier each message came under.
    async with sessionmaker() as session:
        texts = (
            await session.scalars(
                select(Message.text).where(Message.store_id == store_id).order_by(Message.seq)
            )
        ).all()
    assert list(texts) == ["1", "2", "3", "4", "5"]
    # A redelivery is still recognised by its WhatsApp id.
    again = inbound(LID)
    await save(sessionmaker, store_id, again)
    assert await save(sessionmaker, store_id, again) == [None]


@pytest.fixture
async def manager(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> AsyncIterator[SessionManager]:
    async with running_manager(fast_settings(settings), sessionmaker, redis, redis_url) as manager:
        yield manager


async def test_the_simulator_sends_from_a_lid_with_a_known_number(
    manager: SessionManager, sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5491155550009")
    await wait_status(sessionmaker, store_id, "connected")
    for fields in (
        {"from": PHONE},  # by number
        {"from": LID, "from_alt": PHONE},  # by LID, the number beside it
        {"from": LID},  # by LID alone
    ):
        entry = {"id": uuid.uuid4().hex[:20].upper(), "name": "Ana", "text": "hola", "ts": "1764300000000"}
        await redis.xadd(sim_inbound_stream(store_id), entry | fields)  # type: ignore[arg-type]

    async def three() -> list[tuple[str, str | None, int]] | None:
        found = await conversations(sessionmaker, store_id)
        return found if sum(n for _, _, n in found) == 3 else None

    assert await wait_for(three, what="three messages") == [(PHONE, LID, 3)]
    entries = await redis.xrange(messages_stream(store_id))
    assert {json.loads(e[1]["data"])["kwargs"]["chat_jid"] for e in entries} == {PHONE}  # one lane
