"""Messages written straight to the database, as the session manager and the worker write them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text

from app.kit.db import AsyncSessionMaker
from app.models import Conversation, Message

PHONE_CHAT = "5491155550001@s.whatsapp.net"
LID_CHAT = "123456789012345@lid"


async def add_conversation(
    sessionmaker: AsyncSessionMaker,
    store_id: str | uuid.UUID,
    chat_jid: str,
    name: str | None = None,
    *,
    alt_jid: str | None = None,
) -> uuid.UUID:
    async with sessionmaker() as session, session.begin():
        chat = Conversation(
            store_id=uuid.UUID(str(store_id)),
            chat_jid=chat_jid,
            alt_jid=alt_jid,
            customer_name=name,
            bot_state={},
        )
        session.add(chat)
        await session.flush()
        return chat.id


async def add_message(
    sessionmaker: AsyncSessionMaker,
    store_id: str | uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    direction: str = "in",
    text: str | None = "hola",
    created_at: datetime | None = None,
    status: str | None = None,
    **values: Any,
) -> uuid.UUID:
    """One message; the conversation's last_message_at follows it, as the inbound insert does."""
    async with sessionmaker() as session, session.begin():
        message = Message(
            store_id=uuid.UUID(str(store_id)),
            conversation_id=conversation_id,
            direction=direction,
            wa_id=values.pop("wa_id", uuid.uuid4().hex),
            text=text,
            status=status or ("handled" if direction == "in" else "sent"),
            **values,
        )
        if created_at is not None:
            message.created_at = created_at
        session.add(message)
        await session.flush()
        await session.refresh(message)
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        if conversation.last_message_at is None or conversation.last_message_at < message.created_at:
            conversation.last_message_at = message.created_at
        return message.id


# Many messages in one statement: `count` inbound rows in one chat, one second apart from `start` on.
BULK_INSERT = text(
    """
    INSERT INTO messages (id, store_id, conversation_id, direction, wa_id, sender_jid, type, text, status,
                          attempts, created_at, updated_at)
    SELECT gen_random_uuid(), :store_id, :conversation_id, 'in', 'bulk-' || :tag || '-' || n, :sender, 'text',
           :text || ' ' || n, 'handled', 0, CAST(:start AS timestamptz) + n * interval '1 second', now()
    FROM generate_series(1, :count) AS n
    """
)


async def bulk_insert(
    sessionmaker: AsyncSessionMaker,
    store_id: str | uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    count: int,
    start: datetime,
    text_value: str = "mensaje",
    tag: str = "a",
    sender: str = PHONE_CHAT,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            BULK_INSERT,
            {
                "store_id": uuid.UUID(str(store_id)),
                "conversation_id": conversation_id,
                "count": count,
                "start": start,
                "text": text_value,
                "tag": tag,
                "sender": sender,
            },
        )
