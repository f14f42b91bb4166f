"""The whole pipeline: inbound message -> session manager -> worker (echo bot) -> reply sent.

Separate processes (one session manager on the simulator, W workers) on real PostgreSQL and Redis. Phase 1
floods S stores x C chats x M messages and reports the sustained rate from the first message in to the last
reply out, with loss / duplicate / order-violation counts (all must be 0). Phase 2 offers a steady 1,000
messages/s for 60 s (the target) and reports whether the pipeline kept up: the rate it replied at, how long
after the last message the last reply went out, latency and the same counts. Phase 3 injects at half the rate
of phase 1 and reports latency inbound -> reply sent (p50/p95/p99). Phase 4 searches for the knee: the
highest steady rate whose p99 stays under 300 ms (bisection over short steady runs). Phases 2-4 use fresh
chats. Uses DATABASE_URL / REDIS_URL when set, embedded servers otherwise.

Phases 1-4 measure the pipeline itself: the stores' anti-ban pacing (typing presence, jitter, per-store and
per-chat caps) is off, and so are the simulator's delivery/read receipts. Phase 5 (skip with --no-costs) says
what each costs when on: receipts on at the sustained rate (two more status writes per reply), then the
default pacing at half its cap (the cap and the typing pause bound the latency by design, not the pipeline).

    .venv/bin/python -m bench.pipeline   # 20 stores x 50 chats x 60 messages (60,000), 2 workers; ~5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text, update

from app.contracts import sim_outbound_stream
from app.kit.db import AsyncSessionMaker, create_engine, create_sessionmaker
from app.kit.redis import create_redis
from app.models import Store
from bench.common import bench_servers
from bench.harness import (
    UNPACED,
    Processes,
    as_dict,
    check,
    create_stores,
    inject,
    inject_steady,
    wait_connected,
    wait_replies,
)
from sessions.ratelimit import SendPolicy


async def _reset(database_url: str, redis_url: str) -> None:
    engine, redis = create_engine(database_url), create_redis(redis_url)
    await redis.flushdb()
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE tenants CASCADE"))
    await redis.aclose()
    await engine.dispose()


async def _run(args: argparse.Namespace, database_url: str, redis_url: str, logs: Path) -> dict[str, Any]:
    await _reset(database_url, redis_url)
    engine, redis = create_engine(database_url), create_redis(redis_url)
    sessionmaker = create_sessionmaker(engine)
    processes = Processes(database_url, redis_url, logs, {"MOSTRADOR_SESSIONS_MAX_STORES": str(args.stores)})
    try:
        stores = await create_stores(sessionmaker, redis, args.stores)
        for n in range(args.sessions):
            processes.start(f"sessions-{n}", "sessions")
        for n in range(args.workers):
            processes.start(f"worker-{n}", "worker")
        await wait_connected(sessionmaker, stores)
        await asyncio.sleep(3)  # workers take their leases

        # Phase 1: throughput.
        total = args.stores * args.chats * args.per_chat
        started = time.monotonic()
        await inject(redis, stores, args.chats, args.per_chat)
        injected = time.monotonic() - started
        done = await wait_replies(redis, stores, total, args.timeout - (time.monotonic() - started))
        elapsed = time.monotonic() - started
        outcome = await check(redis, sessionmaker, stores, args.chats, args.per_chat)
        rate = done / elapsed

        # Phase 2: a steady load for a minute (the target: 1,000 messages/s for 60 s, every reply on time).
        sustained = await _steady(
            redis,
            sessionmaker,
            stores,
            args.chats,
            args.sustain_rate,
            args.sustain_seconds,
            10_000,
            args.timeout,
        )
        # Phase 3: latency at half the flood's rate, on fresh chats.
        latency = await _steady(
            redis,
            sessionmaker,
            stores,
            args.chats,
            args.latency_rate or rate / 2,
            args.latency_seconds,
            20_000,
            args.timeout,
        )
        # Phase 4: the knee.
        knee = await _knee(redis, sessionmaker, stores, args, sustained, rate)
        costs = await _costs(redis, sessionmaker, stores, args, processes) if args.costs else None
        return {
            "benchmark": "pipeline",
            "settings": {
                "pacing": "off: no typing presence, no jitter, per-store and per-chat caps lifted (phases 1-4)",
                "receipts": "off: the simulator reports no delivered/read receipts (phases 1-4)",
                "costs_when_on": "see `costs` (phase 5)" if costs else "not measured (--no-costs)",
            },
            "stores": args.stores,
            "chats_per_store": args.chats,
            "messages_per_chat": args.per_chat,
            "session_managers": args.sessions,
            "workers": args.workers,
            "throughput": {
                "messages": total,
                "replies_seen": done,
                "seconds": round(elapsed, 2),
                "injection_seconds": round(injected, 2),
                "messages_per_second": round(rate, 1),
                **as_dict(outcome),
            },
            "sustained": sustained,
            "latency_at_half_rate": latency,
            "knee": knee,
            "costs": costs,
        }
    finally:
        processes.stop_all()
        await redis.aclose()
        await engine.dispose()


async def _steady(
    redis: Redis,
    sessionmaker: AsyncSessionMaker,
    stores: list[uuid.UUID],
    chats: int,
    rate: float,
    seconds: float,
    first_chat: int,
    timeout: float,
    *,
    across_stores: bool = False,
) -> dict[str, Any]:
    """Inject `rate` messages/s for `seconds` over fresh chats (numbered from `first_chat`); report the latency
    inbound -> reply sent, how long after the last message the last reply went out, and the usual checks."""
    per_chat = max(1, round(rate * seconds / (len(stores) * chats)))
    expected = len(stores) * chats * per_chat
    before = {s: await redis.xlen(sim_outbound_stream(s)) for s in stores}
    started = time.time()
    sent_at = await inject_steady(
        redis, stores, chats, per_chat, rate, first_chat=first_chat, across_stores=across_stores
    )
    injected = time.time() - started
    await wait_replies(redis, stores, sum(before.values()) + expected, timeout)
    latencies, last_sent = [], started
    replied_at: dict[tuple[str, str], float] = {}
    for store_id in stores:
        entries: Any = await redis.xrange(sim_outbound_stream(store_id), min="-", max="+")
        for _, fields in entries[before[store_id] :]:
            key = (store_id.hex, fields["text"])
            if key in sent_at:
                at = int(fields["ts"]) / 1000
                latencies.append(at - sent_at[key])
                replied_at[key] = at
                last_sent = max(last_sent, at)
    latencies.sort()
    outcome = await check(redis, sessionmaker, stores, chats, per_chat, first_chat=first_chat)
    stages = await _stages(sessionmaker, sent_at, replied_at)

    def pct(p: float) -> float:
        return _percentile_ms(latencies, p) if latencies else -1

    return {
        "target_rate": round(rate, 1),
        "messages": expected,
        "injection_seconds": round(injected, 1),
        # From the first message in to the last reply out: the rate the whole pipeline kept up with.
        "messages_per_second": round(len(latencies) / max(last_sent - started, 1e-9), 1),
        "last_reply_after_last_message_ms": round(1000 * (last_sent - started - injected), 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else -1,
        "stages": stages,
        **as_dict(outcome),
    }


def _percentile_ms(ordered: list[float], p: float) -> float:
    """The `p` quantile (0..1) of ascending seconds, in milliseconds."""
    return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{p}_ms": _percentile_ms(ordered, p / 100) for p in (50, 99)} if ordered else {}


async def _stages(
    sessionmaker: AsyncSessionMaker,
    sent_at: dict[tuple[str, str], float],
    replied_at: dict[tuple[str, str], float],
) -> dict[str, dict[str, float]]:
    """Where the latency goes, from the rows' timestamps (`now()`: the start of the writing transaction):
    injected -> inbound row written (session manager) -> reply row written (worker) -> reply on the simulated
    network (session manager's outbox)."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT i.store_id, i.text, i.created_at, o.created_at FROM messages i "
                    "JOIN messages o ON o.reply_to_id = i.id WHERE i.direction = 'in' AND i.text = ANY(:texts)"
                ),
                {"texts": list({t for _, t in sent_at})},
            )
        ).all()
    gaps: dict[str, list[float]] = {"received": [], "handled": [], "sent": []}
    for store_id, body, received, handled in rows:
        key = (store_id.hex, body)
        if key not in sent_at or key not in replied_at:
            continue
        points = [
            sent_at[key],
            received.timestamp(),
            handled.timestamp(),
            replied_at[key],
        ]
        for name, (a, b) in zip(gaps, itertools.pairwise(points), strict=True):
            gaps[name].append(b - a)
    return {name: _percentiles(values) for name, values in gaps.items()}


P99_TARGET_MS = 300.0


def _held(result: dict[str, Any], target_ms: float = P99_TARGET_MS) -> bool:
    """A steady run held its rate: p99 under the target, nothing lost or reordered, and it kept up (replied at
    the offered rate, the last reply soon after the last message)."""
    return (
        bool(result["clean"])
        and 0 <= result["p99_ms"] < target_ms
        and result["messages_per_second"] >= 0.95 * result["target_rate"]
        and result["last_reply_after_last_message_ms"] < 1000
    )


async def _knee(
    redis: Redis,
    sessionmaker: AsyncSessionMaker,
    stores: list[uuid.UUID],
    args: argparse.Namespace,
    sustained: dict[str, Any],
    flood_rate: float,
) -> dict[str, Any]:
    """The highest steady rate whose p99 stays under the target: bisection between a rate that held (the
    sustained phase's, if it did) and one that did not (the flood's capacity, where queues must grow)."""
    low = sustained["target_rate"] if _held(sustained) else 0.0
    high = max(flood_rate, low * 1.5)
    probes = []
    for n in range(args.knee_probes):
        rate = (low + high) / 2
        result = await _steady(
            redis, sessionmaker, stores, args.chats, rate, args.knee_seconds, 30_000 + 1_000 * n, args.timeout
        )
        held = _held(result)
        probes.append(
            {"rate": round(rate, 1), "p99_ms": result["p99_ms"], "held": held, "clean": result["clean"]}
        )
        low, high = (rate, high) if held else (low, rate)
    return {
        "p99_target_ms": P99_TARGET_MS,
        "seconds_per_probe": args.knee_seconds,
        "knee_messages_per_second": round(low, 1),
        "first_rate_that_did_not_hold": round(high, 1),
        "probes": probes,
    }


async def _restart_sessions(
    processes: Processes, sessionmaker: AsyncSessionMaker, stores: list[uuid.UUID], args: argparse.Namespace
) -> None:
    for n in range(args.sessions):
        processes.kill(f"sessions-{n}", signal.SIGTERM)  # hands its stores over: they leave `connected`
    for n in range(args.sessions):
        processes.start(f"sessions-{n}", "sessions")
    await wait_connected(sessionmaker, stores)
    await asyncio.sleep(2)  # the new manager's outbox reader takes up the stores' streams


async def _costs(
    redis: Redis,
    sessionmaker: AsyncSessionMaker,
    stores: list[uuid.UUID],
    args: argparse.Namespace,
    processes: Processes,
) -> dict[str, Any]:
    """What receipts and pacing cost when on, each against the pipeline without them."""
    processes.env_overrides["MOSTRADOR_SIM_RECEIPTS"] = "true"
    await _restart_sessions(processes, sessionmaker, stores, args)
    with_receipts = await _steady(
        redis, sessionmaker, stores, args.chats, args.sustain_rate, args.costs_seconds, 40_000, args.timeout
    )
    # The default anti-ban policy (sessions/ratelimit.py) on every store; receipts stay on, as in production.
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Store).where(Store.id.in_(stores)).values(settings={}))
    await _restart_sessions(processes, sessionmaker, stores, args)
    policy = SendPolicy()
    cap = policy.per_store_per_second * len(stores)
    # Across stores: each store offered half its own cap (store by store, each would get a burst at 10x it).
    paced = await _steady(
        redis,
        sessionmaker,
        stores,
        args.chats,
        cap / 2,
        args.costs_seconds,
        41_000,
        args.timeout,
        across_stores=True,
    )
    return {
        "receipts_on": {
            "rate": args.sustain_rate,
            "p50_ms": with_receipts["p50_ms"],
            "p99_ms": with_receipts["p99_ms"],
            "messages_per_second": with_receipts["messages_per_second"],
            "stages": with_receipts["stages"],
            "clean": with_receipts["clean"],
            "note": "compare with `sustained` (same rate, receipts off)",
        },
        "pacing_on": {
            "policy": policy.model_dump(),
            "cap_messages_per_second": cap,
            "rate": cap / 2,
            "p50_ms": paced["p50_ms"],
            "p99_ms": paced["p99_ms"],
            "messages_per_second": paced["messages_per_second"],
            "stages": paced["stages"],
            "clean": paced["clean"],
            "note": "latency is the typing pause (400 ms and up) plus jitter (0-300 ms) by design; throughput "
            "is capped at per_store_per_second x stores",
        },
        "unpaced_settings_of_phases_1_to_4": UNPACED["sending"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--per-chat", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=1, help="session manager replicas")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sustain-rate", type=float, default=1000, help="messages/s of phase 2")
    parser.add_argument("--sustain-seconds", type=float, default=60)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument(
        "--latency-rate", type=float, default=0, help="messages/s of phase 3 (default: half of phase 1)"
    )
    parser.add_argument("--knee-probes", type=int, default=4, help="steady runs of the knee search")
    parser.add_argument("--knee-seconds", type=float, default=15, help="length of each knee probe")
    parser.add_argument(
        "--costs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure receipts' and pacing's cost",
    )
    parser.add_argument("--costs-seconds", type=float, default=15)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="mostrador-pipeline-"))
    with bench_servers() as (database_url, redis_url):
        result = asyncio.run(_run(args, database_url, redis_url, logs))
    result["logs"] = str(logs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
