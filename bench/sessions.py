"""One session-manager process brings N simulated stores online from cold.

Prints JSON: for each N, the time until every store is `connected` (from the moment the stores are wanted)
and the manager's resident memory before (idle, same process: the baseline) and after; memory per store is
the difference divided by N. Runs N = 100 and N = 1000 in the same script, so the ratio of seconds per store
says how connecting scales. Uses DATABASE_URL / REDIS_URL when set, embedded servers otherwise.

    .venv/bin/python -m bench.sessions [--stores 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import psutil
from sqlalchemy import func, select, text, update

from app.contracts import STORES_CHANGED_CHANNEL
from app.kit.db import create_engine, create_sessionmaker, transaction
from app.kit.redis import create_redis
from app.models import DesiredState, Store
from bench.common import bench_servers
from bench.harness import create_stores


async def _prepare(database_url: str, redis_url: str, count: int) -> None:
    engine = create_engine(database_url)
    redis = create_redis(redis_url)
    await redis.flushdb()
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE tenants CASCADE"))
    # Paired, but not wanted yet: the clock starts when they are.
    await create_stores(create_sessionmaker(engine), redis, count, desired_state=DesiredState.unlinked)
    await redis.aclose()
    await engine.dispose()


async def _bring_online(database_url: str, redis_url: str, count: int) -> float:
    engine = create_engine(database_url)
    redis = create_redis(redis_url)
    sessionmaker = create_sessionmaker(engine)
    started = time.monotonic()
    async with transaction(sessionmaker) as session:
        await session.execute(update(Store).values(desired_state=DesiredState.linked.value))
    await redis.publish(STORES_CHANGED_CHANNEL, "bench")
    while True:
        async with sessionmaker() as session:
            connected = (
                await session.execute(select(func.count()).where(Store.status == "connected"))
            ).scalar_one()
        if connected == count:
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    await redis.aclose()
    await engine.dispose()
    return elapsed


def run_one(database_url: str, redis_url: str, count: int) -> dict[str, float | int]:
    asyncio.run(_prepare(database_url, redis_url, count))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MOSTRADOR_WHATSAPP_DRIVER": "simulator",
        "MOSTRADOR_LOG_LEVEL": "WARNING",
        "MOSTRADOR_SESSIONS_MAX_STORES": str(count),  # the default cap (500) is sized for neonize
    }
    manager = subprocess.Popen([sys.executable, "-m", "mostrador", "sessions"], env=env)
    try:
        time.sleep(3)  # imports done, loops idle: the baseline
        process = psutil.Process(manager.pid)
        rss_idle = process.memory_info().rss
        seconds = asyncio.run(_bring_online(database_url, redis_url, count))
        time.sleep(2)
        rss_loaded = process.memory_info().rss
    finally:
        manager.terminate()
        manager.wait(60)
    return {
        "stores": count,
        "seconds_to_all_connected": round(seconds, 2),
        "stores_per_second": round(count / seconds, 1),
        "rss_idle_mb": round(rss_idle / 2**20, 1),
        "rss_loaded_mb": round(rss_loaded / 2**20, 1),
        "rss_per_store_kb": round((rss_loaded - rss_idle) / count / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    with bench_servers() as (database_url, redis_url):
        results = [run_one(database_url, redis_url, n) for n in args.stores]
    report: dict[str, object] = {"benchmark": "sessions_cold_start", "driver": "simulator", "runs": results}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        report["seconds_per_store_ratio_large_vs_small"] = round(
            (float(large["seconds_to_all_connected"]) / int(large["stores"]))
            / (float(small["seconds_to_all_connected"]) / int(small["stores"])),
            2,
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
