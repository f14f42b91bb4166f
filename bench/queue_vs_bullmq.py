"""Our queue layer against BullMQ (the original design's), on the same Redis and the same work.

Customers type in bursts: the workload is 4 consecutive messages of one chat at a time, round-robin over the
chats and stores, each message taking 2-10 ms to handle (deterministic: 2 + crc32("store:chat:seq") % 9,
generated here and handed to node as a JSON file). Workload A: 1 store x 200 chats, 10,000 messages;
workload B: 100 stores x 20 chats, 20,000 messages. Everything is enqueued before processing starts; the rate
is measured from the start of processing to the last completion, with per-chat order violations (completions
whose seq is lower than one already completed in that chat).
- ours: `app.kit.streams.StreamConsumer` (one XREADGROUP over the `messages:store-<id>` streams) + the
  worker's `ChatLaneReceiver` on `app.kit.lanes` (per-chat lanes, a global concurrency limit, ack after the
  handler), in-process, handler = asyncio.sleep;
- BullMQ (bench/peers/bullmq, `npm ci` on first use): one Worker per `messages-store-<n>` queue, at
  concurrency 1 (ordered, the original design) and at concurrency 50 (fast, unordered).
Uses --redis-url (default REDIS_URL, else redis://127.0.0.1:6379/12) and FLUSHES that database between runs.

    .venv/bin/python -m bench.queue_vs_bullmq [--scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import redis
from taskiq.message import TaskiqMessage

from app.config import Settings
from app.contracts import MESSAGES_GROUP, inbound_entry, messages_stream
from app.kit.redis import create_redis
from app.kit.streams import StreamConsumer
from workers.broker import store_broker
from workers.receiver import ChatLaneReceiver, write_dead_letter

PEER = Path(__file__).parent / "peers" / "bullmq"
BURST = 4
STORE_NAMESPACE = uuid.UUID("6d6f7374-7261-646f-7200-000000000000")
WORKLOADS = {"workload_A": (1, 200, 10_000), "workload_B": (100, 20, 20_000)}  # stores, chats, messages
TARGETS = {"workload_A": 10.0, "workload_B": 0.5}  # ours / BullMQ ordered, msg/s
Message = tuple[int, int, int, int]  # store, chat, seq, duration_ms


def duration_ms(store: int, chat: int, seq: int) -> int:
    return 2 + zlib.crc32(f"{store}:{chat}:{seq}".encode()) % 9


def workload(stores: int, chats: int, per_chat: int) -> list[Message]:
    """Bursts of BURST messages of one chat, chat after chat (stores interleaved), until each chat has all."""
    messages: list[Message] = []
    for first in range(0, per_chat, BURST):
        for chat in range(chats):
            for store in range(stores):
                for seq in range(first, min(first + BURST, per_chat)):
                    messages.append((store, chat, seq, duration_ms(store, chat, seq)))
    return messages


def result(messages: list[Message], order: list[int], seconds: float, **extra: Any) -> dict[str, Any]:
    latest: dict[tuple[int, int], int] = {}
    violations = 0
    for i in order:
        store, chat, seq, _ = messages[i]
        if seq < latest.get((store, chat), -1):
            violations += 1
        else:
            latest[(store, chat)] = seq
    return {
        "messages": len(messages),
        "completed": len(order),
        "seconds": round(seconds, 3),
        "msg_per_s": round(len(order) / seconds, 1),
        "violations": violations,
        **extra,
    }


def flush(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


# --- ours ----------------------------------------------------------------------------------------------------
async def run_ours(
    redis_url: str, messages: list[Message], *, concurrency: int, chat_buffer: int, timeout: float
) -> dict[str, Any]:
    client = create_redis(redis_url)
    streams = StreamConsumer(client, MESSAGES_GROUP, messages_stream)
    store_ids = [uuid.uuid5(STORE_NAMESPACE, str(n)) for n in range(1 + max(m[0] for m in messages))]
    for store_id in store_ids:
        await streams.own(store_id)  # creates the group before the entries, like a worker that owns the store
    async with client.pipeline(transaction=False) as pipe:
        for i, (store, chat, _, _) in enumerate(messages):
            # message_id carries the index into `messages`: the handler finds its duration from it.
            entry = inbound_entry(message_id=uuid.UUID(int=i), chat_jid=f"{chat}@s.whatsapp.net", wa_id="")
            pipe.xadd(messages_stream(store_ids[store]), entry)  # type: ignore[arg-type]
        await pipe.execute()

    order: list[int] = []
    ended = [0.0]
    done = asyncio.Event()

    async def handler(run: list[TaskiqMessage]) -> None:  # a lane hands over a run of one chat's messages
        for message in run:
            i = uuid.UUID(str(message.kwargs["message_id"])).int
            await asyncio.sleep(messages[i][3] / 1000)
            order.append(i)
        if len(order) == len(messages):
            ended[0] = time.monotonic()
            done.set()

    async def dead_letter(entry: Any, message: TaskiqMessage | None, error: str) -> None:
        await write_dead_letter(client, entry, message, error)

    receiver = ChatLaneReceiver(
        streams,
        store_broker(redis_url).formatter,
        handler,
        concurrency=concurrency,
        chat_buffer=chat_buffer,
        max_attempts=3,
        dead_letter=dead_letter,
    )
    started = time.monotonic()
    reader = asyncio.create_task(receiver.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        ended[0] = time.monotonic()
    await receiver.drain(10)  # the last acks
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    unacked = 0
    for store_id in store_ids:
        pending: Any = await client.xpending(messages_stream(store_id), MESSAGES_GROUP)
        unacked += int(pending["pending"])
    streams.close()
    await client.aclose()
    return result(messages, order, ended[0] - started, concurrency=concurrency, unacked=unacked)


# --- BullMQ --------------------------------------------------------------------------------------------------
def run_bullmq(
    redis_url: str, messages: list[Message], *, concurrency: int, timeout: float
) -> dict[str, Any]:
    stores = 1 + max(m[0] for m in messages)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="workload-") as file:
        json.dump({"stores": stores, "messages": messages}, file)
        file.flush()
        done = subprocess.run(
            ["node", "bench.mjs", file.name, str(concurrency), redis_url],
            cwd=PEER,
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    output = json.loads(done.stdout.strip().splitlines()[-1])
    return result(messages, output["order"], output["seconds"], concurrency=concurrency)


# --- the run -------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/12"
    parser.add_argument("--redis-url", default=default_url, help="Redis to use; its database is FLUSHED")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the messages (quick smoke run)")
    fields = Settings.model_fields
    parser.add_argument("--concurrency", type=int, default=fields["worker_concurrency"].default)
    parser.add_argument("--chat-buffer", type=int, default=fields["worker_chat_buffer"].default)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per run")
    args = parser.parse_args()

    if not (PEER / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER, check=True, stdout=sys.stderr)
    report: dict[str, Any] = {
        "redis_url": args.redis_url,
        "scale": args.scale,
        "ours_settings": {"concurrency": args.concurrency, "chat_buffer": args.chat_buffer},
    }
    for name, (stores, chats, total) in WORKLOADS.items():
        per_chat = max(1, round(total * args.scale / (stores * chats)))
        messages = workload(stores, chats, per_chat)
        print(f"{name}: {stores} stores x {chats} chats, {len(messages)} messages", file=sys.stderr)
        flush(args.redis_url)
        ours = asyncio.run(
            run_ours(
                args.redis_url,
                messages,
                concurrency=args.concurrency,
                chat_buffer=args.chat_buffer,
                timeout=args.timeout,
            )
        )
        runs = {"ours": ours}
        for label, concurrency in (("bullmq_ordered", 1), ("bullmq_c50", 50)):
            flush(args.redis_url)
            runs[label] = run_bullmq(args.redis_url, messages, concurrency=concurrency, timeout=args.timeout)
        for label, run in runs.items():
            print(f"  {label}: {run['msg_per_s']} msg/s, {run['violations']} violations", file=sys.stderr)
        ratio = ours["msg_per_s"] / runs["bullmq_ordered"]["msg_per_s"]
        report[name] = {
            "stores": stores,
            "chats": chats,
            **runs,
            "ours_vs_bullmq_ordered": round(ratio, 2),
            "ours_vs_bullmq_c50": round(ours["msg_per_s"] / runs["bullmq_c50"]["msg_per_s"], 2),
            "target": f"ours >= {TARGETS[name]}x bullmq_ordered, 0 violations",
            "target_met": ratio >= TARGETS[name]
            and ours["violations"] == 0
            and ours["completed"] == len(messages),
        }
    flush(args.redis_url)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
