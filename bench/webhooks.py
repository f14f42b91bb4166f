"""Webhook deliveries: throughput and latency to a local receiver, healthy and failing 30% of requests.

One worker process (`mostrador worker`, which runs the webhook fan-out and deliveries) on real PostgreSQL and
Redis; S stores x C chats, one webhook each (`message.received`) pointing at an HTTP receiver on 127.0.0.1 in
this process. Inbound messages are inserted straight into `messages` (as the session manager's group commit
does; the change-log trigger records them), so what is measured is the webhooks alone:
- burst: S x C x M messages inserted as fast as possible; deliveries per second from the first insert to the
  last first success;
- steady: a steady rate for a while; latency from the message's commit to its delivery (p50/p95/p99);
- the same burst with the receiver answering 503 to 30% of requests (retried with the real backoff: 5 s
  doubling, with jitter), and its ratios to the healthy run.
Each phase checks that every message arrived, in order per chat (lost / order violations must be 0;
duplicates counts receipts of a webhook-id already answered 2xx).

    .venv/bin/python -m bench.webhooks                      # 100 stores x 10 chats x 5 messages per phase
    .venv/bin/python -m bench.webhooks --messages 2 --rate 100 --seconds 10   # a loaded machine

`--per-receiver` is the worker's MOSTRADOR_WEBHOOKS_MAX_PER_RECEIVER; MOSTRADOR_BENCH_DATABASE names the bench's
database (two runs side by side, each with its own Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.events.repository import horizon
from app.kit.db import AsyncSessionMaker, create_engine, create_sessionmaker, transaction
from app.models import Conversation, Store, Tenant, Webhook
from app.webhooks.repository import FanoutRepository
from app.webhooks.signing import SecretBox, new_secret
from bench.common import bench_servers
from bench.harness import Processes

SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"


@dataclass
class Receiver:
    fail_ratio: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    # text -> [(receipt time, status, webhook-id, created_at)]
    seen: dict[str, list[tuple[float, int, str, str]]] = field(default_factory=dict)
    successes: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: set[str] = field(default_factory=set)

    async def handle(self, request: Request) -> Response:
        body = json.loads(await request.body())
        message = body["data"]["message"]
        status = 503 if self.rng.random() < self.fail_ratio else 200
        key = message["text"]
        attempts = self.seen.setdefault(key, [])
        attempts.append((time.time(), status, request.headers["webhook-id"], message["created_at"]))
        if status == 200 and key in self.expected:
            self.expected.discard(key)
            if not self.expected:
                self.done.set()
        return Response(b"{}", status_code=status)


async def serve(receiver: Receiver) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", backlog=4096))
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=[sock])
    return server, asyncio.create_task(server.main_loop()), sock.getsockname()[1]


async def setup(sessionmaker: AsyncSessionMaker, stores: int, chats: int, url: str) -> list[list[uuid.UUID]]:
    """Stores with one webhook each; returns each store's conversations."""
    box = SecretBox(SECRET_KEY)
    conversations: list[list[uuid.UUID]] = []
    async with transaction(sessionmaker) as session:
        tenant = Tenant(name="bench")
        session.add(tenant)
        await session.flush()
        for s in range(stores):
            store = Store(tenant_id=tenant.id, name=f"Store {s}", bot_kind="echo", bot_config={}, settings={})
            session.add(store)
            await session.flush()
            session.add(
                Webhook(
                    tenant_id=tenant.id,
                    store_id=store.id,
                    url=url,
                    secret_encrypted=box.encrypt(new_secret()),
                    events=["message.received"],
                    enabled=True,
                )
            )
            chat_ids = []
            for c in range(chats):
                conversation = Conversation(store_id=store.id, chat_jid=f"54911{s:04d}{c:04d}@s.whatsapp.net")
                session.add(conversation)
                await session.flush()
                chat_ids.append(conversation.id)
            conversations.append(chat_ids)
            await FanoutRepository(session).start_position(store.id, await horizon(session), reset=True)
    return conversations


INSERT = text(
    """
    INSERT INTO messages (id, store_id, conversation_id, direction, wa_id, type, text, status, attempts,
                          created_at, updated_at)
    SELECT gen_random_uuid(), c.store_id, c.id, 'in', gen_random_uuid()::text, 'text', t.text, 'handled', 0,
           clock_timestamp(), now()
    FROM unnest(CAST(:conversations AS uuid[]), CAST(:texts AS text[])) WITH ORDINALITY AS t(conversation_id, text, n)
    JOIN conversations c ON c.id = t.conversation_id
    ORDER BY t.n
    """
)


BREAKDOWN = text(
    """
    SELECT split_part(m.text, ':', 1),
           1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.created_at - m.created_at)),
           1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.updated_at - d.created_at))
             FILTER (WHERE d.attempts = 1)
    FROM webhook_deliveries d JOIN events e ON e.id = d.event_id JOIN messages m ON m.id = e.message_id
    GROUP BY 1
    """
)


async def insert(sessionmaker: AsyncSessionMaker, rows: list[tuple[uuid.UUID, str]]) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(INSERT, {"conversations": [r[0] for r in rows], "texts": [r[1] for r in rows]})


def messages_of(
    phase: str, conversations: list[list[uuid.UUID]], per_chat: int
) -> list[tuple[uuid.UUID, str]]:
    """Interleaved across stores and chats, as customers type; text = phase:store:chat:n."""
    return [
        (chat_id, f"{phase}:{s}:{c}:{n}")
        for n in range(per_chat)
        for s, chats in enumerate(conversations)
        for c, chat_id in enumerate(chats)
    ]


def outcome(receiver: Receiver, texts: list[str], started: float) -> dict[str, Any]:
    firsts, latencies, lost, duplicates = [], [], 0, 0
    first_success: dict[str, float] = {}
    for key in texts:
        attempts = receiver.seen.get(key, [])
        ok = [a for a in attempts if a[1] == 200]
        if not ok:
            lost += 1
            continue
        duplicates += len(ok) - 1
        first_success[key] = ok[0][0]
        firsts.append(ok[0][0])
        latencies.append(ok[0][0] - datetime.fromisoformat(ok[0][3]).timestamp())
    violations = 0
    last: dict[str, tuple[int, float]] = {}
    for key in texts:  # in insertion order per chat
        if key not in first_success:
            continue
        chat = key.rsplit(":", 1)[0]
        if chat in last and first_success[key] < last[chat][1]:
            violations += 1
        last[chat] = (0, first_success[key])
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else 0.0
        )

    requests = sum(len(receiver.seen.get(k, [])) for k in texts)
    return {
        "messages": len(texts),
        "requests": requests,
        "deliveries_per_second": round(len(firsts) / (max(firsts) - started), 1) if firsts else 0.0,
        "latency_ms": {
            "p50": pct(0.5),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "mean": round(1000 * statistics.fmean(latencies), 1) if latencies else 0,
        },
        "lost": lost,
        "duplicates": duplicates,
        "order_violations": violations,
    }


async def burst(
    receiver: Receiver, sessionmaker: AsyncSessionMaker, rows: list[tuple[uuid.UUID, str]], timeout: float
) -> dict[str, Any]:
    receiver.expected = {r[1] for r in rows}
    receiver.done.clear()
    started = time.time()
    for i in range(0, len(rows), 1000):
        await insert(sessionmaker, rows[i : i + 1000])
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receiver.done.wait(), timeout)
    return outcome(receiver, [r[1] for r in rows], started)


async def steady(
    receiver: Receiver, sessionmaker: AsyncSessionMaker, rows: list[tuple[uuid.UUID, str]], rate: float
) -> dict[str, Any]:
    receiver.expected = {r[1] for r in rows}
    receiver.done.clear()
    started = time.time()
    tick = 0.05
    per_tick = max(1, round(rate * tick))
    for i in range(0, len(rows), per_tick):
        await insert(sessionmaker, rows[i : i + per_tick])
        delay = started + (i + per_tick) / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receiver.done.wait(), 120)
    result = outcome(receiver, [r[1] for r in rows], started)
    result["offered_per_second"] = rate
    return result


async def run(args: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=4)
    sessionmaker = create_sessionmaker(engine)
    receiver = Receiver()
    server, task, port = await serve(receiver)
    logs = Path(tempfile.mkdtemp(prefix="mostrador-bench-webhooks-"))
    processes = Processes(
        database_url,
        redis_url,
        logs,
        env_overrides={
            "MOSTRADOR_SECRET_KEY": SECRET_KEY,
            "MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
            # The cap the JSON reports (it was printed but never passed on: the worker ran with the default 8).
            "MOSTRADOR_WEBHOOKS_MAX_PER_RECEIVER": str(args.per_receiver),
        },
    )
    try:
        conversations = await setup(sessionmaker, args.stores, args.chats, f"http://127.0.0.1:{port}/hook")
        for w in range(args.workers):
            processes.start(f"worker-{w}", "worker")
        # Warm-up: the workers take their leases and serve one message per store.
        warm = await burst(
            receiver, sessionmaker, messages_of("warm", conversations, 1)[: args.stores * 1], 120
        )
        healthy = await burst(receiver, sessionmaker, messages_of("burst", conversations, args.messages), 600)
        latency = await steady(
            receiver,
            sessionmaker,
            messages_of("steady", conversations, 100)[: int(args.rate * args.seconds)],
            args.rate,
        )
        receiver.fail_ratio = 0.3
        failing = await burst(
            receiver, sessionmaker, messages_of("failing", conversations, args.messages), 900
        )
        receiver.fail_ratio = 0.0
        async with sessionmaker() as session:
            breakdown = {
                row[0]: {
                    "fan_out_p99_ms": round(row[1] or 0, 1),
                    "first_attempt_p99_ms": round(row[2] or 0, 1),
                }
                for row in await session.execute(BREAKDOWN)
            }
    finally:
        processes.stop_all()
        server.should_exit = True
        await task
        await engine.dispose()
    return {
        "stores": args.stores,
        "chats_per_store": args.chats,
        "messages_per_chat": args.messages,
        "workers": args.workers,
        "per_receiver": args.per_receiver,
        "warm_up_lost": warm["lost"],
        "healthy": healthy,
        "steady": latency,
        "failing_30_percent": failing,
        # Where the time goes: commit -> delivery row written (the fan-out, which waits for the visibility
        # horizon: any long transaction on the server delays it), row written -> first attempt's outcome.
        "breakdown": breakdown,
        "ratios_failing_to_healthy": {
            "deliveries_per_second": round(
                failing["deliveries_per_second"] / max(0.1, healthy["deliveries_per_second"]), 3
            ),
            "p99": round(failing["latency_ms"]["p99"] / max(0.1, healthy["latency_ms"]["p99"]), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5, help="per chat, in each burst")
    parser.add_argument("--rate", type=float, default=200, help="steady phase: messages per second")
    parser.add_argument("--seconds", type=float, default=15, help="steady phase: duration")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--per-receiver", type=int, default=64, help="requests in flight to the one receiver")
    args = parser.parse_args()
    database = os.environ.get("MOSTRADOR_BENCH_DATABASE", "mostrador_bench_webhooks")  # two runs side by side
    with bench_servers(database) as (database_url, redis_url):
        result = asyncio.run(run(args, database_url, redis_url))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
