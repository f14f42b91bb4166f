"""The inbound hot path's one statement (`SAVE_INBOUND`), A/B against its baseline, interleaved.

The session manager writes every inbound batch (many stores, one statement, group-committed). Migration 0010
made that statement find a customer's conversation under either of its identifiers (phone JID or LID) and
return the conversation's key. This measures what that costs, per batch, against the statement as it was
before (embedded below as the baseline), on one database, in alternating rounds so that the load of a shared
machine hits both alike. Scenarios: a batch over chats that exist (the steady state), a batch of new chats
(first contact), and a batch of LID-addressed messages of chats known by number (the lookup's worst common
case). Prints JSON: per scenario, the median and p90 milliseconds per batch of each and their ratio.
Uses DATABASE_URL / REDIS_URL when set, embedded servers otherwise.

    .venv/bin/python -m bench.inbound_insert [--batch 200] [--rounds 40] [--stores 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, text

from app.kit.db import AsyncSessionMaker, create_engine, create_sessionmaker, single_statement
from app.models import Store, Tenant
from bench.common import bench_servers, median_p90
from sessions.drivers.base import InboundMessage
from sessions.repository import SAVE_INBOUND

# The statement before migration 0010 (commit 974edf7): conversations upserted by (store, chat_jid) only.
BASELINE_SAVE_INBOUND = text("""
WITH input AS (
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:store_ids AS uuid[]), CAST(:chats AS text[]), CAST(:wa_ids AS text[]),
        CAST(:senders AS text[]), CAST(:types AS text[]), CAST(:texts AS text[]), CAST(:media AS text[]),
        CAST(:names AS text[]), CAST(:timestamps AS timestamptz[])
    ) WITH ORDINALITY AS i(id, store_id, chat_jid, wa_id, sender_jid, type, text, media, name, ts, ord)
), chats AS (
    INSERT INTO conversations AS c
        (id, store_id, chat_jid, customer_name, last_message_at, bot_state, bot_paused)
    SELECT gen_random_uuid(), store_id, chat_jid,
           (array_agg(name ORDER BY ord DESC) FILTER (WHERE name IS NOT NULL))[1], max(ts), '{}', false
    FROM input GROUP BY store_id, chat_jid
    ORDER BY store_id, chat_jid  -- rows are locked in this order, the worker's order too: no deadlock
    ON CONFLICT (store_id, chat_jid) DO UPDATE SET
        customer_name = coalesce(excluded.customer_name, c.customer_name),
        last_message_at = greatest(c.last_message_at, excluded.last_message_at),
        updated_at = now()
    RETURNING c.id, c.store_id, c.chat_jid
)
INSERT INTO messages
    (id, store_id, conversation_id, direction, wa_id, sender_jid, type, text, media, status, attempts, wa_timestamp)
SELECT i.id, i.store_id, chats.id, 'in', i.wa_id, i.sender_jid, i.type, i.text, CAST(i.media AS jsonb),
       'queued', 0, i.ts
FROM input i JOIN chats ON chats.store_id = i.store_id AND chats.chat_jid = i.chat_jid
ORDER BY i.ord
ON CONFLICT (store_id, wa_id) DO NOTHING
RETURNING id
""")


Batch = list[tuple[uuid.UUID, InboundMessage]]


def _params(batch: Batch, *, alternates: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ids": [uuid.uuid4() for _ in batch],
        "store_ids": [store_id for store_id, _ in batch],
        "chats": [m.chat_jid for _, m in batch],
        "wa_ids": [m.wa_id for _, m in batch],
        "senders": [m.sender_jid for _, m in batch],
        "types": [m.type for _, m in batch],
        "texts": [m.text for _, m in batch],
        "media": [None for _ in batch],
        "names": [m.sender_name for _, m in batch],
        "timestamps": [m.timestamp for _, m in batch],
    }
    if alternates:
        params["alts"] = [m.chat_alt_jid for _, m in batch]
    return params


def _message(chat: str, alt: str | None = None) -> InboundMessage:
    return InboundMessage(
        wa_id=uuid.uuid4().hex.upper(),
        chat_jid=chat,
        chat_alt_jid=alt,
        sender_jid=chat,
        timestamp=datetime.now(UTC),
        type="text",
        text="hola, ¿tienen stock del talle m?",
        sender_name="Ana",
    )


async def _timed(sessionmaker: AsyncSessionMaker, statement: TextClause, params: dict[str, Any]) -> float:
    async with single_statement(sessionmaker) as session:
        began = time.perf_counter()
        await session.execute(statement, params)
        return time.perf_counter() - began


async def run(database_url: str, batch_size: int, rounds: int, stores: int) -> dict[str, Any]:
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("TRUNCATE tenants CASCADE"))
        tenant = Tenant(name="bench")
        session.add(tenant)
        await session.flush()
        made = [Store(tenant_id=tenant.id, name=f"store {i}") for i in range(stores)]
        session.add_all(made)
        await session.flush()
        store_ids = [store.id for store in made]
    counter = iter(range(10**9))

    def phone() -> str:
        return f"{5491100000000 + next(counter)}@s.whatsapp.net"

    # Chats known by number (with their LID learned), spread over the stores, as after a while in production.
    known = [(store_ids[n % stores], phone(), f"{900000000 + n}@lid") for n in range(batch_size)]
    await _timed(
        sessionmaker,
        SAVE_INBOUND,
        _params([(s, _message(chat, lid)) for s, chat, lid in known], alternates=True),
    )

    scenarios: dict[str, Callable[[], Batch]] = {
        "existing_chats": lambda: [(s, _message(chat)) for s, chat, _ in known],
        "new_chats": lambda: [(store_ids[n % stores], _message(phone())) for n in range(batch_size)],
        "lid_of_known_chats": lambda: [(s, _message(lid)) for s, _, lid in known],
    }
    result: dict[str, Any] = {}
    for name, make in scenarios.items():
        times: dict[str, list[float]] = {"baseline": [], "now": []}
        for round_ in range(rounds + 3):
            order = [("baseline", BASELINE_SAVE_INBOUND, False), ("now", SAVE_INBOUND, True)]
            for label, statement, alternates in order if round_ % 2 else order[::-1]:
                elapsed = await _timed(sessionmaker, statement, _params(make(), alternates=alternates))
                if round_ >= 3:  # warm-up rounds are not counted
                    times[label].append(elapsed)
        base, now = median_p90(times["baseline"]), median_p90(times["now"])
        result[name] = {
            "baseline": base,
            "now": now,
            "ratio_median": round(now["median_ms"] / base["median_ms"], 2),
        }
    await engine.dispose()
    return {"benchmark": "inbound_insert", "batch": batch_size, "rounds": rounds, "stores": stores, **result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--stores", type=int, default=20)
    args = parser.parse_args()
    with bench_servers() as (database_url, _redis_url):
        result = asyncio.run(run(database_url, args.batch, args.rounds, args.stores))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
