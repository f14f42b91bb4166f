"""Log lines name the store, chat and message they concern (structlog contextvars), and only those."""

from __future__ import annotations

import asyncio
import uuid

import structlog

from app.kit.batching import GroupCommit
from app.kit.lanes import Key, Lanes


async def test_a_lane_binds_its_store_and_chat_and_a_shared_batch_binds_none() -> None:
    seen_in_lanes: dict[Key, dict[str, object]] = {}
    seen_in_batches: list[dict[str, object]] = []

    async def flush(items: list[int]) -> list[None]:
        seen_in_batches.append(structlog.contextvars.get_contextvars())
        return [None] * len(items)

    commits: GroupCommit[int, None] = GroupCommit(flush)

    async def handle(key: Key, run: list[int]) -> None:
        seen_in_lanes[key] = structlog.contextvars.get_contextvars()
        with structlog.contextvars.bound_contextvars(message_id=f"m{run[0]}"):
            await commits.submit(run[0])  # one batch for several chats' items

    lanes: Lanes[int] = Lanes(handle)
    store = uuid.uuid4()
    keys = [(store, "5491100000001@s.whatsapp.net"), (store, "5491100000002@s.whatsapp.net")]
    for n, key in enumerate(keys):
        lanes.put(key, n)
    assert await lanes.wait_idle(5)
    assert seen_in_lanes == {key: {"store_id": str(store), "chat": key[1]} for key in keys}
    assert seen_in_batches and all(context == {} for context in seen_in_batches)
    # Nothing leaked into the caller's context either.
    assert structlog.contextvars.get_contextvars() == {}
    commits.close()
    await asyncio.sleep(0)
