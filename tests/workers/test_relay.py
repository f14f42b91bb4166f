"""The relay (workers/relay.py): rows whose stream entries may be missing go back on their streams, once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import insert, select

from app.contracts import messages_stream, outbox_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.models import Conversation, Message
from tests.sessions.helpers import create_store
from workers.relay import Relay

CHAT = "5491100000001@s.whatsapp.net"


async def test_rows_left_behind_are_relayed_to_their_streams_and_fresh_ones_are_not(
    sessionmaker: AsyncSessionMaker, redis: Redis
) -> None:
    store_id = await create_store(sessionmaker, redis, paired_phone="+5493600000001")
    now = datetime.now(UTC)
    old, recent = now - timedelta(seconds=60), now - timedelta(seconds=1)
    conversation_id = uuid.uuid4()
    rows = {  # name -> (direction, status, created/updated at)
        "received-old": ("in", "received", old),
        "received-recent": ("in", "received", recent),
        "queued-old": ("in", "queued", old),
        "queued-recent": ("in", "queued", recent),
        "handled-old": ("in", "handled", old),
        "pending-old": ("out", "pending", old),
        "pending-recent": ("out", "pending", recent),
        "sending-old": ("out", "sending", old),  # interrupted mid-send: never sent again, so never relayed
    }
    ids = {name: uuid.uuid4() for name in rows}
    async with transaction(sessionmaker) as session:
        await session.execute(
            insert(Conversation),
            [{"id": conversation_id, "store_id": store_id, "chat_jid": CHAT, "bot_state": {}}],
        )
        await session.execute(
            insert(Message),
            [
                {
                    "id": ids[name], "store_id": store_id, "conversation_id": conversation_id, "direction": direction,
                    "status": status, "text": name, "wa_id": f"WA-{name}" if direction == "in" else None,
                    "created_at": at, "updated_at": at,
                }
                for name, (direction, status, at) in rows.items()
            ],
        )  # fmt: skip
    relay = Relay(sessionmaker, redis, stale_after=timedelta(seconds=10))
    assert await relay.sweep([store_id]) == 3

    inbound = [json.loads(fields["data"]) for _, fields in await redis.xrange(messages_stream(store_id))]
    assert [task["kwargs"]["message_id"] for task in inbound] == [
        str(ids["received-old"]),
        str(ids["queued-old"]),
    ]
    assert inbound[0]["task_name"] == "inbound.handle" and inbound[0]["kwargs"]["chat_jid"] == CHAT
    outbox = [fields for _, fields in await redis.xrange(outbox_stream(store_id))]
    assert outbox == [{"message_id": str(ids["pending-old"]), "chat_jid": CHAT}]
    async with sessionmaker() as session:
        status = {row[0]: row[1] for row in await session.execute(select(Message.id, Message.status))}
    assert status[ids["received-old"]] == "queued"  # on its stream now
    assert status[ids["received-recent"]] == "received"  # its session manager may still be queueing it
    assert status[ids["handled-old"]] == "handled" and status[ids["sending-old"]] == "sending"

    # Relayed rows' clocks restarted: the next sweep finds nothing to do.
    assert await relay.sweep([store_id]) == 0
