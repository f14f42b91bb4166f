"""The whole pipeline as separate processes, for benchmarks and for the tests that kill processes.

One session manager (simulator driver) and N workers run as `mostrador` subprocesses against real PostgreSQL
and Redis; customers' messages are injected into the simulated network and the replies are read back from it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select, text

from app.contracts import (
    MESSAGES_GROUP,
    OUTBOX_GROUP,
    create_store_streams,
    messages_stream,
    outbox_stream,
    sim_device_key,
    sim_inbound_stream,
    sim_outbound_stream,
)
from app.kit.db import AsyncSessionMaker, transaction
from app.models import DesiredState, Message, Store, Tenant

# Replies go out as fast as the pipeline allows: no typing pauses, no pacing (the benchmark measures us).
UNPACED = {
    "sending": {
        "typing": False,
        "jitter_ms": 0,
        "per_store_per_second": 100000,
        "per_chat_per_minute": 100000,
    }
}


def chat_jid(chat: int) -> str:
    return f"54911{chat:08d}@s.whatsapp.net"


@dataclass
class Processes:
    database_url: str
    redis_url: str
    logs: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
            "MOSTRADOR_ENV": "testing",
            "MOSTRADOR_LOG_LEVEL": "WARNING",
            "MOSTRADOR_SIM_RECEIPTS": "false",  # receipts are not what is measured
            "MOSTRADOR_OPS_PORT": "0",  # no metrics listener: many of these processes run side by side
            **self.env_overrides,
        }

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mostrador", *args], env=self.env(), stdout=log, stderr=log
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(60)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def create_stores(
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    count: int,
    *,
    queue_redis: Redis | None = None,
    desired_state: DesiredState = DesiredState.linked,
) -> list[uuid.UUID]:
    """Stores already paired in the simulator (`redis`: the simulated network's), with the echo bot and unpaced
    sending; their streams are created in `queue_redis` (default: the same Redis)."""
    ids = []
    async with transaction(sessionmaker) as session:
        tenant = Tenant(name="load")
        session.add(tenant)
        await session.flush()
        for n in range(count):
            phone = f"+54977{n:08d}"
            device = f"{phone[1:]}:3@s.whatsapp.net"
            store = Store(
                id=uuid.uuid4(), tenant_id=tenant.id, name=f"Store {n}", desired_state=desired_state.value,
                device_jid=device, phone_number=phone, bot_kind="echo", bot_config={}, settings=UNPACED,
            )  # fmt: skip
            session.add(store)
            ids.append(store.id)
            await redis.set(sim_device_key(device), json.dumps({"store_id": str(store.id), "phone": phone}))
    for store_id in ids:
        await create_store_streams(queue_redis or redis, store_id)
    return ids


async def wait_connected(
    sessionmaker: AsyncSessionMaker, store_ids: list[uuid.UUID], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with sessionmaker() as session:
            count = (
                await session.execute(
                    select(func.count()).where(Store.id.in_(store_ids), Store.status == "connected")
                )
            ).scalar_one()
        if count == len(store_ids):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"stores not connected within {timeout} s")


async def inject(
    redis: Redis, store_ids: list[uuid.UUID], chats: int, per_chat: int, *, rate: float | None = None
) -> dict[str, float]:
    """Customers' messages, interleaved across stores and chats, in bursts of 4 per chat; text `c<chat> m<n>`.
    Returns the injection time of each message (by its WhatsApp id), for latencies."""
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    count = 0
    burst = 4
    for first in range(0, per_chat, burst):
        async with redis.pipeline(transaction=False) as pipe:
            for store_id in store_ids:
                for chat in range(chats):
                    for n in range(first, min(first + burst, per_chat)):
                        wa_id = f"L{store_id.hex[:8]}{chat:04d}{n:05d}".upper()
                        pipe.xadd(
                            sim_inbound_stream(store_id),
                            {
                                "id": wa_id,
                                "from": chat_jid(chat),
                                "name": "",
                                "text": f"c{chat} m{n}",
                                "ts": "1764300000000",
                            },
                        )
                        sent_at[wa_id] = time.monotonic()
                        count += 1
            await pipe.execute()
        if rate:
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    return sent_at


async def inject_steady(
    redis: Redis,
    store_ids: list[uuid.UUID],
    chats: int,
    per_chat: int,
    rate: float,
    *,
    first_chat: int = 0,
    across_stores: bool = False,
) -> dict[tuple[str, str], float]:
    """Customers' messages at a steady `rate`, round after round over every chat (numbered from `first_chat`):
    every 10 ms, the messages due are written in one pipeline (a sender costing a message's worth of CPU each
    would compete with the system it measures). A round goes store by store (each store's chats in a burst),
    or with `across_stores` chat by chat over every store (each store gets rate / stores: what a per-store cap
    needs to be measured against). Returns the wall-clock send time by (store hex, text)."""
    chat_numbers = range(first_chat, first_chat + chats)
    if across_stores:
        one_round = [(store_id, chat) for chat in chat_numbers for store_id in store_ids]
    else:
        one_round = [(store_id, chat) for store_id in store_ids for chat in chat_numbers]
    messages = [(store_id, chat, n) for n in range(per_chat) for store_id, chat in one_round]
    sent_at: dict[tuple[str, str], float] = {}
    started = time.monotonic()
    done = 0
    while done < len(messages):
        due = min(len(messages), int((time.monotonic() - started) * rate) + 1)
        now = time.time()  # taken before the write: latencies err on the long side
        async with redis.pipeline(transaction=False) as pipe:
            for store_id, chat, n in messages[done:due]:
                body = f"c{chat} m{n}"
                pipe.xadd(
                    sim_inbound_stream(store_id),
                    {
                        "id": f"T{store_id.hex[:8]}{chat:05d}{n:05d}".upper(),
                        "from": chat_jid(chat),
                        "name": "",
                        "text": body,
                        "ts": "1764300000000",
                    },
                )
            await pipe.execute()
        for store_id, chat, n in messages[done:due]:
            sent_at[(store_id.hex, f"c{chat} m{n}")] = now
        done = due
        await asyncio.sleep(0.01)
    return sent_at


@dataclass
class Outcome:
    expected: int
    received: int = 0
    missing: int = 0
    duplicates: int = 0
    order_violations: int = 0
    replies_per_inbound_over_one: int = 0
    inbound_not_handled: int = 0
    replies_not_sent: int = 0  # reply rows not (yet) sent: failed, or still on their way

    @property
    def clean(self) -> bool:
        return (self.missing, self.duplicates, self.order_violations, self.replies_per_inbound_over_one) == (
            0,
            0,
            0,
            0,
        )


async def replies(redis: Redis, store_ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, str], list[str]]:
    result: dict[tuple[uuid.UUID, str], list[str]] = defaultdict(list)
    for store_id in store_ids:
        for _, fields in await redis.xrange(sim_outbound_stream(store_id)):
            result[(store_id, fields["chat"])].append(fields["text"])
    return result


async def reply_count(redis: Redis, store_ids: list[uuid.UUID]) -> int:
    total = 0
    for store_id in store_ids:
        total += await redis.xlen(sim_outbound_stream(store_id))
    return total


async def wait_replies(redis: Redis, store_ids: list[uuid.UUID], count: int, timeout: float) -> int:
    """Wait until the stores have sent `count` replies in all, or `timeout` seconds passed; return how many."""
    deadline = time.monotonic() + timeout
    seen = await reply_count(redis, store_ids)
    while seen < count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        seen = await reply_count(redis, store_ids)
    return seen


async def settled(redis: Redis, sessionmaker: AsyncSessionMaker, store_ids: list[uuid.UUID]) -> bool:
    """Nothing left that could still send: no message row in flight (received, queued, pending, sending), and
    every entry of the stores' message and outbox streams delivered to its consumer and acknowledged. A send
    needs a pending row, so from here on no reply can go out, twice or at all: the positive signal that tests
    wait for instead of sleeping "until duplicates would show"."""
    async with sessionmaker() as session:
        in_flight = await session.scalar(
            select(func.count()).where(
                Message.store_id.in_(store_ids),
                Message.status.in_(["received", "queued", "pending", "sending"]),
            )
        )
    if in_flight:
        return False
    for store_id in store_ids:
        for stream, group in (
            (messages_stream(store_id), MESSAGES_GROUP),
            (outbox_stream(store_id), OUTBOX_GROUP),
        ):
            if not await redis.exists(stream):
                continue
            info: Any = await redis.xinfo_stream(stream)
            groups: Any = await redis.xinfo_groups(stream)
            mine = next((g for g in groups if g["name"] == group), None)
            if mine is None or mine["pending"] or mine["last-delivered-id"] != info["last-generated-id"]:
                return False
    return True


async def check(
    redis: Redis,
    sessionmaker: AsyncSessionMaker,
    store_ids: list[uuid.UUID],
    chats: int,
    per_chat: int,
    *,
    first_chat: int = 0,
) -> Outcome:
    """Replies of chats `first_chat`.. of every store: all there, once each, in order. The database counts
    (replies per inbound, inbound not handled, replies not sent) cover every message of the run."""
    outcome = Outcome(expected=len(store_ids) * chats * per_chat)
    got = await replies(redis, store_ids)
    for store_id in store_ids:
        for chat in range(first_chat, first_chat + chats):
            texts = got.get((store_id, chat_jid(chat)), [])
            outcome.received += len(texts)
            numbers = [int(t.split(" m")[1]) for t in texts]
            outcome.duplicates += len(numbers) - len(set(numbers))
            outcome.missing += per_chat - len(set(numbers))
            outcome.order_violations += sum(1 for a, b in itertools.pairwise(numbers) if b <= a)
    async with sessionmaker() as session:
        over = await session.execute(
            text(
                "SELECT count(*) FROM (SELECT reply_to_id FROM messages WHERE direction = 'out' "
                "GROUP BY reply_to_id HAVING count(*) > 1) AS doubled"
            )
        )
        outcome.replies_per_inbound_over_one = int(over.scalar_one())
        not_handled = await session.execute(
            select(func.count()).where(Message.direction == "in", Message.status != "handled")
        )
        outcome.inbound_not_handled = int(not_handled.scalar_one())
        not_sent = await session.execute(
            select(func.count()).where(
                Message.direction == "out", Message.status.not_in(["sent", "delivered", "read"])
            )
        )
        outcome.replies_not_sent = int(not_sent.scalar_one())
    return outcome


def as_dict(outcome: Outcome) -> dict[str, Any]:
    return {**outcome.__dict__, "clean": outcome.clean}
