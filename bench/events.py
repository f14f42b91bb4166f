"""What the change log (`events`, migration 0009) costs the hot writes.

The triggers add one INSERT ... SELECT per statement that inserts messages or changes statuses. This measures
a group-committed batch as the session manager and the worker write it (one INSERT of `batch` inbound rows,
then one UPDATE of their statuses, then one UPDATE of outbound statuses) with the triggers enabled and
disabled, alternating rounds in one process so that both see the same machine, each round in a transaction
that is rolled back. Prints JSON: microseconds per message for each, and the ratio.

    .venv/bin/python -m bench.events [--batch 100 --rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import asyncpg

from app.kit.db import libpq_url
from bench.common import bench_servers

TRIGGERS = ("mostrador_events_messages_insert", "mostrador_events_messages_update")

INSERT = """
INSERT INTO messages (id, store_id, conversation_id, direction, wa_id, sender_jid, type, text, status, attempts)
SELECT gen_random_uuid(), $1, $2, 'in', $3 || n, 'x@s.whatsapp.net', 'text', 'hola ' || n, 'queued', 0
FROM generate_series(1, $4) AS n
RETURNING id
"""
HANDLE = "UPDATE messages SET status = 'handled' WHERE id = ANY($1::uuid[])"
SEND = "UPDATE messages SET status = 'sent' WHERE id = ANY($1::uuid[])"


async def _run(database_url: str, batch: int, rounds: int) -> dict[str, object]:
    conn = await asyncpg.connect(libpq_url(database_url))
    try:
        tenant, store, chat = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'bench')", tenant)
        await conn.execute(
            "INSERT INTO stores (id, tenant_id, name, desired_state, status, bot_kind, bot_config, settings) "
            "VALUES ($1, $2, 'bench', 'unlinked', 'unlinked', 'echo', '{}', '{}')",
            store,
            tenant,
        )
        await conn.execute(
            "INSERT INTO conversations (id, store_id, chat_jid, bot_state, bot_paused) "
            "VALUES ($1, $2, 'x@s.whatsapp.net', '{}', false)",
            chat,
            store,
        )
        times: dict[bool, list[float]] = {True: [], False: []}
        for n in range(rounds * 2 + 20):
            on = n % 2 == 0
            elapsed = await _timed_rolled_back(conn, store, chat, batch, on)
            if n >= 20:  # warm-up
                times[on].append(elapsed)
    finally:
        await conn.close()
    per_message = {on: statistics.median(values) / batch * 1e6 for on, values in times.items()}
    return {
        "benchmark": "events",
        "batch": batch,
        "rounds": rounds,
        "statements": "INSERT of the batch (inbound), UPDATE to handled, UPDATE to sent",
        "us_per_message_log_on": round(per_message[True], 1),
        "us_per_message_log_off": round(per_message[False], 1),
        "ratio_on_over_off": round(per_message[True] / per_message[False], 3),
    }


async def _timed_rolled_back(
    conn: asyncpg.Connection, store: uuid.UUID, chat: uuid.UUID, batch: int, on: bool
) -> float:
    tag = uuid.uuid4().hex[:12]
    transaction = conn.transaction()
    await transaction.start()
    try:
        if not on:
            for trigger in TRIGGERS:
                await conn.execute(f"ALTER TABLE messages DISABLE TRIGGER {trigger}")
        started = time.perf_counter()
        ids = [row["id"] for row in await conn.fetch(INSERT, store, chat, tag, batch)]
        await conn.execute(HANDLE, ids)
        await conn.execute(SEND, ids)
        return time.perf_counter() - started
    finally:
        await transaction.rollback()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with bench_servers() as (database_url, _redis_url):
        print(json.dumps(asyncio.run(_run(database_url, args.batch, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
