"""History read side: N messages across S stores, then server-side p50/p99 of the history queries.

Prints JSON. Times the repository calls the endpoints make (statement, round trip, ORM rows: what the server
spends, without HTTP), many samples each, on random stores: the newest page of 50, a page of 50 behind a deep
cursor (90% of the way down a store's history), a search (a common word and a rare one, accents stripped), the
conversations page, and the changes feed (`GET /changes`: the service's read of a page of 50 with its
messages, from a store's first change, from a cursor 90% down its log, and at its end, the polling client's
usual empty page), plus the long-poll's shared probe for 100 waiting stores. The bulk load writes the change
log as the triggers do in production (a row per message created, and per status change of a sixth of them).
Also the inbound insert's cost of the search index: batches of 100 rows like the session manager's, with the
index and without it (dropped inside a rolled-back transaction). Targets: page < 20 ms, search < 100 ms,
changes page < 20 ms. Uses DATABASE_URL / REDIS_URL when set, embedded servers otherwise.

    .venv/bin/python -m bench.history [--messages 1000000] [--stores 100] [--samples 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.changes.service import Cursors
from app.changes.service import changes as changes_service
from app.conversations.repository import ConversationRepository
from app.events.repository import START, EventPosition, page_after_statement, waiters_with_news
from app.kit.db import AsyncSessionMaker, create_engine, create_sessionmaker
from app.kit.pagination import encode_cursor
from app.messages.repository import MessageFilters, MessageRepository
from app.models import Store, Tenant
from bench.common import bench_servers

CHATS_PER_STORE = 200
CHUNK = 25_000  # rows per transaction: short ones, since a long one holds back every change-log reader of the server
DAYS = 90
# Spanish words, some with accents; the first ones are drawn far more often (a skewed vocabulary, like chat).
WORDS = [
    "hola",
    "gracias",
    "pedido",
    "precio",
    "quiero",
    "mañana",
    "envío",
    "cuánto",
    "está",
    "tienen",
    "horario",
    "abierto",
    "pago",
    "tarjeta",
    "efectivo",
    "dirección",
    "llega",
    "hoy",
    "favor",
    "buenas",
    "tardes",
    "noches",
    "consulta",
    "stock",
    "talle",
    "color",
    "rojo",
    "azul",
    "negro",
    "canción",
    "foto",
    "número",
    "turno",
    "reserva",
    "cancelar",
    "cambiar",
    "factura",
    "descuento",
    "oferta",
    "promoción",
    "café",
    "té",
    "medialunas",
    "pizza",
    "empanadas",
    "envíos",
    "sábado",
    "domingo",
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "señora",
    "señor",
    "atención",
    "ubicación",
    "teléfono",
    "próxima",
    "semana",
    "último",
    "después",
    "antes",
    "también",
    "según",
    "había",
    "país",
    "corazón",
    "árbol",
    "jamón",
    "limón",
]
COMMON_WORD, RARE_WORD = "pedido", "limon"  # `limon` without its accent: it must still find `limón`

BENCH_SECRET = "bench-secret-key-that-is-long-enough-0123456789"


async def _setup(engine: AsyncEngine, messages: int, stores: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE tenants CASCADE"))
    # The tenant and its stores through the ORM (their columns' defaults); the rows that count in bulk, in SQL.
    async with create_sessionmaker(engine)() as session, session.begin():
        tenant = Tenant(name="bench")
        session.add(tenant)
        await session.flush()
        made = [Store(tenant_id=tenant.id, name=f"store {i}") for i in range(stores)]
        session.add_all(made)
        await session.flush()
        tenant_id, store_ids = tenant.id, [store.id for store in made]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO conversations (id, store_id, chat_jid, bot_state, bot_paused)"
                " SELECT gen_random_uuid(), s, (5491100000000 + c)::text || '@s.whatsapp.net', '{}', false"
                " FROM unnest(CAST(:ids AS uuid[])) AS s, generate_series(1, :chats) AS c"
            ),
            {"ids": store_ids, "chats": CHATS_PER_STORE},
        )
        await conn.execute(
            text(
                "CREATE TABLE bench_chats AS"
                " SELECT (row_number() OVER (ORDER BY id) - 1)::int AS k, id, store_id FROM conversations"
            )
        )
        # Bulk-loaded without the search index, which is then built once (the inbound insert's cost of keeping
        # it up to date is measured separately, in `insert_cost`).
        await conn.execute(text("DROP INDEX ix_messages_text_search"))
    total_chats = stores * CHATS_PER_STORE
    for start in range(0, messages, CHUNK):
        began = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    f"""
                    INSERT INTO messages (id, store_id, conversation_id, direction, wa_id, sender_jid, type, text,
                                          status, attempts, created_at, updated_at)
                    SELECT gen_random_uuid(), c.store_id, c.id, CASE WHEN n % 3 = 0 THEN 'out' ELSE 'in' END,
                           'b-' || n, NULL, 'text',
                           (SELECT string_agg(pick.word, ' ')
                              FROM generate_series(1, 3 + n % 9) AS i
                              CROSS JOIN LATERAL (
                                SELECT w[1 + floor(power(random(), 2) * array_length(w, 1))::int + 0 * i] AS word
                              ) AS pick),
                           CASE WHEN n % 3 = 0 THEN 'sent' ELSE 'handled' END, 0,
                           now() - interval '{DAYS} days'
                             + (n::float8 / CAST(:total AS int)) * interval '{DAYS} days', now()
                    FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) AS n
                    JOIN bench_chats AS c ON c.k = n % CAST(:chats AS int),
                         (SELECT CAST(:words AS text[]) AS w) AS vocabulary
                    """
                ),
                {
                    "lo": start + 1,
                    "hi": min(start + CHUNK, messages),
                    "total": messages,
                    "chats": total_chats,
                    "words": list(WORDS),
                },
            )
        print(
            f"inserted {min(start + CHUNK, messages)} in {time.perf_counter() - began:.1f}s", file=sys.stderr
        )
    # Status changes of a sixth of the messages (half the replies read by the customer): `message.status` rows
    # in the change log, written by the trigger as in production.
    began = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE messages SET status = 'read' WHERE direction = 'out' AND (hashtext(wa_id) & 1) = 0")
        )
    print(f"status changes in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        await conn.execute(
            text(
                "CREATE INDEX ix_messages_text_search ON messages USING gin"
                " (to_tsvector('spanish'::regconfig, mostrador_unaccent(text))) WHERE text IS NOT NULL"
            )
        )
        await conn.execute(
            text(
                "UPDATE conversations AS c SET last_message_at = m.last FROM"
                " (SELECT conversation_id, max(created_at) AS last FROM messages GROUP BY conversation_id) AS m"
                " WHERE m.conversation_id = c.id"
            )
        )
        await conn.execute(text("DROP TABLE bench_chats"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE messages"))
        await conn.execute(text("VACUUM ANALYZE conversations"))
        await conn.execute(text("VACUUM ANALYZE events"))
    return tenant_id, store_ids


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "samples": len(ordered),
    }


async def _time(
    sessionmaker: AsyncSessionMaker, samples: int, call: Callable[[Any], Awaitable[object]]
) -> dict[str, float]:
    times = []
    async with sessionmaker() as session:
        for _ in range(min(20, samples)):  # warm the connection and the caches
            await call(session)
        for _ in range(samples):
            began = time.perf_counter()
            await call(session)
            times.append(time.perf_counter() - began)
            await session.rollback()  # one short transaction per sample, like a request
    return _summary(times)


async def _deep_cursors(engine: AsyncEngine, store_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    cursors = {}
    async with engine.connect() as conn:
        for store_id in store_ids:
            count = (
                await conn.execute(text("SELECT count(*) FROM messages WHERE store_id = :s"), {"s": store_id})
            ).scalar_one()
            row = (
                await conn.execute(
                    text(
                        "SELECT created_at, id FROM messages WHERE store_id = :s"
                        " ORDER BY created_at DESC, id DESC OFFSET :o LIMIT 1"
                    ),
                    {"s": store_id, "o": int(count * 0.9)},
                )
            ).one()
            cursors[store_id] = encode_cursor((row.created_at, row.id))
    return cursors


async def _deep_positions(engine: AsyncEngine, store_ids: list[uuid.UUID]) -> dict[uuid.UUID, EventPosition]:
    """Per store, the position 90% down its change log (a client that fell far behind)."""
    positions = {}
    async with engine.connect() as conn:
        for store_id in store_ids:
            count = (
                await conn.execute(text("SELECT count(*) FROM events WHERE store_id = :s"), {"s": store_id})
            ).scalar_one()
            row = (
                await conn.execute(
                    text("SELECT xid, id FROM events WHERE store_id = :s ORDER BY xid, id OFFSET :o LIMIT 1"),
                    {"s": store_id, "o": int(count * 0.9)},
                )
            ).one()
            positions[store_id] = EventPosition(row.xid, row.id)
    return positions


async def _plans(
    engine: AsyncEngine, tenant_id: uuid.UUID, store_id: uuid.UUID, cursor: str, position: EventPosition
) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of the statements the repositories build, compiled with their parameters."""
    from sqlalchemy.dialects import postgresql

    plans = {}
    async with create_sessionmaker(engine)() as session:
        repository = MessageRepository.for_tenant(session, tenant_id)
        for name, filters, page_cursor in (
            ("page", MessageFilters(), None),
            ("deep_page", MessageFilters(), cursor),
            ("search_common", MessageFilters(q=COMMON_WORD), None),
            ("search_rare", MessageFilters(q=RARE_WORD), None),
        ):
            statement = repository.page_statement(store_id, filters, limit=50, cursor=page_cursor)
            sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            rows = (await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))).scalars().all()
            plans[name] = list(rows)
        for name, after in (("changes_log_page", START), ("changes_log_deep_page", position)):
            statement = page_after_statement(store_id, after, limit=50, kinds=None)
            sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            rows = (await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))).scalars().all()
            plans[name] = list(rows)
    return plans


async def insert_cost(
    engine: AsyncEngine, store_ids: list[uuid.UUID], rows: int = 20_000
) -> dict[str, float]:
    """Inserting `rows` messages 100 at a time (the session manager's batches), with the search index and with
    it dropped, both in rolled-back transactions: the difference is what the index costs the inbound insert."""
    result = {}
    for name, drop in (("with_search_index", False), ("without_search_index", True)):
        async with engine.connect() as conn:
            transaction = await conn.begin()
            if drop:
                await conn.execute(text("DROP INDEX ix_messages_text_search"))
            chat = (
                await conn.execute(
                    text("SELECT id FROM conversations WHERE store_id = :s LIMIT 1"), {"s": store_ids[0]}
                )
            ).scalar_one()
            began = time.perf_counter()
            for batch in range(rows // 100):
                await conn.execute(
                    text(
                        "INSERT INTO messages (id, store_id, conversation_id, direction, wa_id, type, text, status,"
                        " attempts) SELECT gen_random_uuid(), :s, :c, 'in', 'ins-' || :b || '-' || n, 'text',"
                        " 'quiero hacer un pedido para mañana, ¿tienen envío? ' || n, 'received', 0"
                        " FROM generate_series(1, 100) AS n"
                    ),
                    {"s": store_ids[0], "c": chat, "b": str(batch)},
                )
            elapsed = time.perf_counter() - began
            await transaction.rollback()
        result[f"{name}_us_per_row"] = round(elapsed / rows * 1e6, 1)
    return result


async def run(database_url: str, messages: int, stores: int, samples: int) -> dict[str, Any]:
    engine = create_engine(database_url)
    began = time.perf_counter()
    tenant_id, store_ids = await _setup(engine, messages, stores)
    setup_seconds = time.perf_counter() - began
    sessionmaker = create_sessionmaker(engine)
    cursors = await _deep_cursors(engine, store_ids)

    def repo(session: Any) -> MessageRepository:
        return MessageRepository.for_tenant(session, tenant_id)

    async def newest(session: Any) -> object:
        return await repo(session).list_page(
            random.choice(store_ids), MessageFilters(), limit=50, cursor=None
        )

    async def deep(session: Any) -> object:
        store_id = random.choice(store_ids)
        return await repo(session).list_page(store_id, MessageFilters(), limit=50, cursor=cursors[store_id])

    def search(word: str) -> Callable[[Any], Awaitable[object]]:
        async def call(session: Any) -> object:
            return await repo(session).list_page(
                random.choice(store_ids), MessageFilters(q=word), limit=50, cursor=None
            )

        return call

    async def chat_page(session: Any) -> object:
        store_id = random.choice(store_ids)
        chat = f"{5491100000000 + random.randint(1, CHATS_PER_STORE)}@s.whatsapp.net"
        return await repo(session).list_page(store_id, MessageFilters(chat_jid=chat), limit=50, cursor=None)

    async def conversations(session: Any) -> object:
        return await ConversationRepository.for_tenant(session, tenant_id).list_page(
            random.choice(store_ids), limit=50, cursor=None
        )

    positions = await _deep_positions(engine, store_ids)
    tenant = Tenant(id=tenant_id, name="bench")  # transient: the service needs only its id

    def feed(where: str) -> Callable[[Any], Awaitable[object]]:
        async def call(session: Any) -> object:
            store_id = random.choice(store_ids)
            after = {"start": START, "deep": positions[store_id], "end": EventPosition(2**62, 0)}[where]
            cursors = Cursors(BENCH_SECRET, store_id)  # each item's cursor is sealed, as the API does
            page, _ = await changes_service.read(session, tenant, cursors, after, 50, None)
            assert where == "end" or len(page) == 50
            return page

        return call

    async def waiters_probe(session: Any) -> object:
        return await waiters_with_news(
            session, [(store_id, positions[store_id], None) for store_id in store_ids[:100]]
        )

    figures = {
        "page_newest": await _time(sessionmaker, samples, newest),
        "page_deep_cursor": await _time(sessionmaker, samples, deep),
        "page_one_chat": await _time(sessionmaker, samples, chat_page),
        "search_common_word": await _time(sessionmaker, samples, search(COMMON_WORD)),
        "search_rare_word": await _time(sessionmaker, samples, search(RARE_WORD)),
        "conversations_page": await _time(sessionmaker, samples, conversations),
        "changes_page_from_start": await _time(sessionmaker, samples, feed("start")),
        "changes_page_deep_cursor": await _time(sessionmaker, samples, feed("deep")),
        "changes_page_at_the_end": await _time(sessionmaker, samples, feed("end")),
        "changes_long_poll_probe_100_stores": await _time(sessionmaker, samples, waiters_probe),
    }
    async with engine.connect() as conn:
        events = (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one()
    plans = await _plans(engine, tenant_id, store_ids[0], cursors[store_ids[0]], positions[store_ids[0]])
    for name, lines in plans.items():
        print(f"--- {name}\n" + "\n".join(lines), file=sys.stderr)
    cost = await insert_cost(engine, store_ids)
    await engine.dispose()
    return {
        "messages": messages,
        "stores": stores,
        "chats_per_store": CHATS_PER_STORE,
        "setup_seconds": round(setup_seconds, 1),
        "events": events,
        "targets_ms": {"page_p99": 20, "search_p99": 100, "changes_page_p99": 20},
        **figures,
        "met": figures["page_newest"]["p99_ms"] < 20
        and figures["page_deep_cursor"]["p99_ms"] < 20
        and figures["search_common_word"]["p99_ms"] < 100
        and figures["search_rare_word"]["p99_ms"] < 100
        and figures["changes_page_from_start"]["p99_ms"] < 20
        and figures["changes_page_deep_cursor"]["p99_ms"] < 20,
        "insert_cost": cost,
        "plans_execution_ms": {
            name: next(
                (line.split(":")[1].strip() for line in lines if line.startswith("Execution Time")), None
            )
            for name, lines in plans.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with bench_servers() as (database_url, _redis_url):
        result = asyncio.run(run(database_url, args.messages, args.stores, args.samples))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
