"""The worker's transaction (`InboundHandler`), A/B against its previous version, interleaved.

A worker handles the runs of many chats in one transaction (group-committed). It used to look every entry's row
up, lock the conversations, read the waiting messages, then write with three statements (replies, `handled`,
the bots' state): 8 round trips with BEGIN and COMMIT. Now an inbound entry carries its row's conversation and
`seq`, and the writes are one statement: 5 round trips. This measures both on one database, on the same kind of
batch (one new message in each of N chats of 20 stores, echo bot), in alternating rounds so that the load of a
shared machine hits both alike. The previous version is embedded below as the baseline (commit a5f055a). Both
put the replies on the outbox streams the same way. Prints JSON: per batch size, the median and p90
milliseconds per batch of each, and their ratio. Uses DATABASE_URL / REDIS_URL when set, embedded servers
otherwise.

    .venv/bin/python -m bench.handler [--sizes 1 10 50] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select, text, update

from app.contracts import outbox_entry, outbox_stream
from app.kit.db import AsyncSessionMaker, create_engine, create_sessionmaker, single_statement, transaction
from app.kit.redis import create_redis
from app.models import Conversation, Direction, Message, MessageStatus, Store, Tenant
from bench.common import bench_servers, median_p90
from sessions.drivers.base import InboundMessage
from sessions.repository import SessionsRepository
from workers.handler import InboundHandler, InboundRef
from workers.repository import ConversationRow, ConversationSave, InboundRow, StoreRow

BASELINE_UNHANDLED_INBOUND = text("""
SELECT m.id, m.store_id, m.conversation_id, m.seq, m.status, m.type, m.text, m.wa_timestamp, m.created_at
FROM messages m
JOIN unnest(CAST(:ids AS uuid[]), CAST(:store_ids AS uuid[]), CAST(:seqs AS bigint[])) AS u(id, store_id, seq)
  ON m.store_id = u.store_id AND m.conversation_id = u.id
WHERE m.status IN ('received', 'queued') AND m.direction = 'in' AND m.seq <= u.seq
ORDER BY m.seq
FOR UPDATE OF m
""")

BASELINE_ADD_REPLIES = text("""
INSERT INTO messages (id, store_id, conversation_id, direction, type, text, status, attempts, reply_to_id)
SELECT r.id, r.store_id, r.conversation_id, 'out', 'text', r.text, 'pending', 0, r.reply_to
FROM unnest(
    CAST(:ids AS uuid[]), CAST(:store_ids AS uuid[]), CAST(:conversation_ids AS uuid[]),
    CAST(:reply_to AS uuid[]), CAST(:texts AS text[])
) WITH ORDINALITY AS r(id, store_id, conversation_id, reply_to, text, ord)
ORDER BY r.ord
""")

BASELINE_SAVE_CONVERSATIONS = text("""
UPDATE conversations c
SET bot_state = CAST(u.state AS jsonb), bot_paused = u.paused, bot_paused_at = u.paused_at, updated_at = now()
FROM unnest(
    CAST(:ids AS uuid[]), CAST(:states AS text[]), CAST(:paused AS boolean[]), CAST(:paused_at AS timestamptz[])
) AS u(id, state, paused, paused_at)
WHERE c.id = u.id
""")


class BaselineHandler(InboundHandler):
    """`_handle_runs` as it was: a lookup of every entry's row and three writing statements."""

    async def _handle_runs(self, runs: list[list[InboundRef]]) -> list[None]:
        async with transaction(self.sessionmaker) as session:
            refs = [ref for run in runs for ref in run]
            found = await session.execute(
                select(
                    Message.id, Message.store_id, Message.conversation_id, Message.seq, Message.status,
                    Message.type, Message.text, Message.wa_timestamp, Message.created_at,
                )
                .where(Message.id.in_([uuid.UUID(r.message_id) for r in refs]), Message.direction == Direction.inbound)
                .order_by(Message.seq)
            )  # fmt: skip
            up_to: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
            for target in (InboundRow(*row) for row in found.all()):
                if target.status != MessageStatus.handled:
                    seen = up_to.get(target.conversation_id, (target.store_id, 0))[1]
                    up_to[target.conversation_id] = (target.store_id, max(seen, target.seq))
            locked = await session.execute(
                select(
                    Conversation.id, Conversation.chat_jid, Conversation.customer_name, Conversation.bot_state,
                    Conversation.bot_paused, Conversation.bot_paused_at,
                    Store.id, Store.name, Store.bot_kind, Store.bot_config, Store.settings,
                )
                .join(Store, Store.id == Conversation.store_id)
                .where(Conversation.id.in_(list(up_to)))
                .order_by(Conversation.store_id, Conversation.chat_jid)
                .with_for_update(of=Conversation, key_share=True)
            )  # fmt: skip
            conversations = [(ConversationRow(*row[:6]), StoreRow(*row[6:])) for row in locked]
            ids = list(up_to)
            backlog: dict[uuid.UUID, list[InboundRow]] = {}
            waiting_rows = await session.execute(
                BASELINE_UNHANDLED_INBOUND,
                {"ids": ids, "store_ids": [up_to[i][0] for i in ids], "seqs": [up_to[i][1] for i in ids]},
            )
            for row in (InboundRow(*r) for r in waiting_rows):
                backlog.setdefault(row.conversation_id, []).append(row)
            replies: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]] = []
            chats: list[str] = []
            saves: list[ConversationSave] = []
            for conversation, store in conversations:
                waiting = backlog.get(conversation.id)
                if not waiting:
                    continue
                texts, save = await self._run_bot(session, conversation, store, waiting)
                replies += [(store.id, conversation.id, reply_to, body) for reply_to, body in texts]
                chats += [conversation.chat_jid] * len(texts)
                saves.append(save)
            reply_ids = [uuid.uuid4() for _ in replies]
            if replies:
                await session.execute(
                    BASELINE_ADD_REPLIES,
                    {
                        "ids": reply_ids,
                        "store_ids": [r[0] for r in replies],
                        "conversation_ids": [r[1] for r in replies],
                        "reply_to": [r[2] for r in replies],
                        "texts": [r[3] for r in replies],
                    },
                )
            await session.execute(
                update(Message)
                .where(Message.id.in_([row.id for rows in backlog.values() for row in rows]))
                .values(status=MessageStatus.handled.value, error=None)
            )
            if saves:
                await session.execute(
                    BASELINE_SAVE_CONVERSATIONS,
                    {
                        "ids": [c.id for c in saves],
                        "states": [json.dumps(c.state) for c in saves],
                        "paused": [c.paused for c in saves],
                        "paused_at": [c.paused_at for c in saves],
                    },
                )
        await _queue(
            self.redis,
            [(r[0], reply_id, chat) for r, reply_id, chat in zip(replies, reply_ids, chats, strict=True)],
        )
        return [None] * len(runs)


async def _queue(redis: Redis, outbox: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for store_id, reply_id, chat_jid in outbox:
            pipe.xadd(outbox_stream(store_id), outbox_entry(message_id=reply_id, chat_jid=chat_jid))  # type: ignore[arg-type]
        await pipe.execute()


async def _new_messages(
    sessionmaker: AsyncSessionMaker, chats: list[tuple[uuid.UUID, str]], counter: list[int]
) -> list[InboundRef]:
    """One new inbound message in each chat, written as the session manager writes them; their entries' refs."""
    batch = []
    for store_id, chat in chats:
        counter[0] += 1
        message = InboundMessage(
            wa_id=f"B{counter[0]:012d}",
            chat_jid=chat,
            sender_jid=chat,
            timestamp=datetime.now(UTC),
            type="text",
            text=f"hola {counter[0]}",
        )
        batch.append((store_id, message))
    async with single_statement(sessionmaker) as session:
        written = await SessionsRepository(session).save_inbound(batch)
    return [
        InboundRef(str(row.id), row.chat_jid, "", str(row.conversation_id), row.seq)
        for row in written
        if row is not None
    ]


async def run(database_url: str, redis_url: str, sizes: list[int], rounds: int) -> dict[str, Any]:
    engine, redis = create_engine(database_url), create_redis(redis_url)
    sessionmaker = create_sessionmaker(engine)
    await redis.flushdb()
    async with sessionmaker() as session, session.begin():
        await session.execute(text("TRUNCATE tenants CASCADE"))
        tenant = Tenant(name="bench")
        session.add(tenant)
        await session.flush()
        stores = [
            Store(tenant_id=tenant.id, name=f"store {i}", bot_kind="echo", bot_config={}) for i in range(20)
        ]
        session.add_all(stores)
        await session.flush()
        store_ids = [store.id for store in stores]
    handlers = {"baseline": BaselineHandler(sessionmaker, redis), "now": InboundHandler(sessionmaker, redis)}
    counter = [0]
    result: dict[str, Any] = {}
    for size in sizes:
        # Each handler its own chats (as many as the batch), so neither finds the other's work waiting.
        chats = {
            label: [(store_ids[n % 20], f"{5491100000000 + 10_000 * size + 1000 * k + n}@s.whatsapp.net")
                    for n in range(size)]
            for k, label in enumerate(handlers)
        }  # fmt: skip
        times: dict[str, list[float]] = {label: [] for label in handlers}
        for round_ in range(rounds + 3):
            order = list(handlers) if round_ % 2 else list(handlers)[::-1]
            for label in order:
                refs = await _new_messages(sessionmaker, chats[label], counter)
                began = time.perf_counter()
                await handlers[label]._handle_runs([[ref] for ref in refs])
                if round_ >= 3:  # warm-up rounds are not counted
                    times[label].append(time.perf_counter() - began)
        base, now = median_p90(times["baseline"]), median_p90(times["now"])
        result[f"chats_{size}"] = {
            "baseline": base,
            "now": now,
            "ratio_median": round(now["median_ms"] / base["median_ms"], 2),
        }
    async with sessionmaker() as session:
        pending = (
            await session.execute(text("SELECT count(*) FROM messages WHERE status = 'queued'"))
        ).scalar_one()
    await redis.aclose()
    await engine.dispose()
    # Every message handled by one or the other: a handler that skipped work would look fast.
    return {"benchmark": "handler", "rounds": rounds, "unhandled_left": pending, **result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with bench_servers() as (database_url, redis_url):
        result = asyncio.run(run(database_url, redis_url, args.sizes, args.rounds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
