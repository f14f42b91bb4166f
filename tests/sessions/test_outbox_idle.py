"""The outbox keeps nothing per chat once a chat is served: 10,000 chats, then idle, cost what one chat costs."""

from __future__ import annotations

import asyncio
import gc
import sys
import types
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, insert, select, update

from app.config import Settings
from app.contracts import OUTBOX_GROUP, STORES_CHANGED_CHANNEL, outbox_entry, outbox_stream
from app.kit.db import AsyncSessionMaker, transaction
from app.models import Conversation, DesiredState, Message, Store
from sessions.outbound import Outbox
from tests.sessions.helpers import (
    FAST_SENDING,
    create_store,
    fast_settings,
    running_manager,
    wait_for,
    wait_status,
)

CHATS = 10_000
WARM_UP = 200
# What the Outbox object graph may have grown by after 10,000 chats and back to idle. Everything per chat must be
# gone; what may remain is bookkeeping that does not grow with the chats seen (a GroupCommit's finished flusher
# task, a few counters). One lane kept per chat (what the outbox did before: a task, a queue and a record per chat
# ever seen) costs over 1 KB a chat here, 10 MB for these chats: the bound is far below that.
TOLERANCE_BYTES = 64 * 1024


def reachable_size(root: object, exclude: list[object]) -> int:
    """Bytes of the objects reachable from `root`, except the excluded collaborators (Redis, the sessionmaker,
    the sessions lookup: shared with the rest of the manager, not the outbox's own), code, modules, the event
    loop and frames (live tasks are counted by the task count instead)."""
    seen = {id(obj) for obj in exclude}
    stack: list[Any] = [root]
    total = 0
    skipped = (
        type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, types.FrameType,
        asyncio.AbstractEventLoop,
    )  # fmt: skip
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skipped):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def outbox_size(outbox: Outbox) -> int:
    gc.collect()
    return reachable_size(
        outbox, [outbox.redis, outbox.sessionmaker, outbox.session_for, outbox.new_message_id]
    )


async def queue_replies(
    sessionmaker: AsyncSessionMaker, redis: Redis, store_id: uuid.UUID, chats: range
) -> None:
    """One pending reply in each of `chats` new conversations, with its outbox entry."""
    conversations = [
        {
            "id": uuid.uuid4(),
            "store_id": store_id,
            "chat_jid": f"54911{n:08d}@s.whatsapp.net",
            "bot_state": {},
        }
        for n in chats
    ]
    replies = [
        {
            "id": uuid.uuid4(), "store_id": store_id, "conversation_id": c["id"], "direction": "out",
            "text": f"hola {c['chat_jid'][:13]}", "status": "pending",
        }
        for c in conversations
    ]  # fmt: skip
    async with transaction(sessionmaker) as session:
        await session.execute(insert(Conversation), conversations)
        await session.execute(insert(Message), replies)
    async with redis.pipeline(transaction=False) as pipe:
        for conversation, reply in zip(conversations, replies, strict=True):
            entry = outbox_entry(message_id=reply["id"], chat_jid=conversation["chat_jid"])
            pipe.xadd(outbox_stream(store_id), entry)  # type: ignore[arg-type]
        await pipe.execute()


async def wait_sent(sessionmaker: AsyncSessionMaker, redis: Redis, store_id: uuid.UUID, n: int) -> None:
    async def all_sent() -> bool:
        async with sessionmaker() as session:
            sent = (
                await session.execute(
                    select(func.count()).where(Message.store_id == store_id, Message.status == "sent")
                )
            ).scalar_one()
        pending: Any = await redis.xpending(outbox_stream(store_id), OUTBOX_GROUP)
        return sent == n and pending["pending"] == 0

    await wait_for(all_sent, timeout=180, interval=0.5, what=f"{n} replies sent and acknowledged")


async def test_ten_thousand_chats_served_then_idle_leave_no_task_and_no_memory_behind(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    quick = fast_settings(settings, sim_receipts=False)  # receipts have their own tests; here only sends
    store_id = await create_store(
        sessionmaker, redis, desired=DesiredState.unlinked, paired_phone="+5493500000001"
    )
    sending = {"sending": {**FAST_SENDING["sending"], "per_store_per_second": 100_000}}
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(Store).where(Store.id == store_id).values(settings=sending, desired_state="linked")
        )
    async with running_manager(quick, sessionmaker, redis, redis_url) as manager:
        await redis.publish(STORES_CHANGED_CHANNEL, str(store_id))
        await wait_status(sessionmaker, store_id, "connected")
        outbox = manager.outbox

        # Warm up (connection pools, statement caches, the flushers' first tasks), then take the baseline.
        await queue_replies(sessionmaker, redis, store_id, range(WARM_UP))
        await wait_sent(sessionmaker, redis, store_id, WARM_UP)
        await wait_for(lambda: _idle(outbox), what="the outbox idle after the warm-up")
        tasks_before = len(asyncio.all_tasks())
        size_before = outbox_size(outbox)

        await queue_replies(sessionmaker, redis, store_id, range(WARM_UP, WARM_UP + CHATS))
        await wait_sent(sessionmaker, redis, store_id, WARM_UP + CHATS)

        async def back_to_baseline() -> bool:
            return await _idle(outbox) and len(asyncio.all_tasks()) <= tasks_before

        await wait_for(back_to_baseline, timeout=10, what="the task count back to its baseline")
        size_after = outbox_size(outbox)
        assert outbox.lanes.lanes() == 0
        assert size_after - size_before < TOLERANCE_BYTES, (size_before, size_after)


async def _idle(outbox: Outbox) -> bool:
    return outbox.lanes.lanes() == 0
