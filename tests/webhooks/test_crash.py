"""A worker SIGKILLed in the middle of a delivery: the next owner delivers it again (at-least-once, the same
`webhook-id`) and everything after it, in order; nothing is lost."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from bench.harness import Processes
from tests.messages.helpers import add_conversation, add_message
from tests.support import post_store
from tests.webhooks.helpers import Received, running_receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(database_url: str, redis_url: str, tmp_path: Path, settings: Settings) -> Iterator[Processes]:
    assert settings.secret_key
    group = Processes(
        database_url,
        redis_url,
        tmp_path / "logs",
        env_overrides={
            "MOSTRADOR_SECRET_KEY": settings.secret_key,  # the API's: the same key decrypts the secrets
            "MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
            "MOSTRADOR_WORKER_LEASE_TTL_SECONDS": "2",
            "MOSTRADOR_WORKER_RECONCILE_SECONDS": "0.5",
        },
    )
    yield group
    group.stop_all()


async def test_a_delivery_cut_by_a_sigkill_is_made_again_by_the_next_owner(
    private_client: AsyncClient, sessionmaker: AsyncSessionMaker, processes: Processes
) -> None:
    store_id = await post_store(private_client)
    stalled = asyncio.Event()

    def policy(_n: int, received: Received) -> tuple[int, dict[str, str], float]:
        text = received.json["data"]["message"]["text"]
        if text == "0:3" and not stalled.is_set():
            stalled.set()
            return 200, {}, 20.0  # hangs: the worker is killed while it waits for this answer
        return 200, {}, 0.0

    chats, per_chat = 3, 8
    async with running_receiver(policy) as receiver:
        response = await private_client.post(
            f"/v1/stores/{store_id}/webhooks", json={"url": receiver.url, "events": ["message.received"]}
        )
        assert response.status_code == 201, response.text
        first = processes.start("worker-0", "worker")
        conversations = [
            await add_conversation(sessionmaker, store_id, f"54911000000{c:02d}@s.whatsapp.net")
            for c in range(chats)
        ]
        for n in range(per_chat):
            for c, conversation in enumerate(conversations):
                await add_message(sessionmaker, store_id, conversation, text=f"{c}:{n}")
        await asyncio.wait_for(stalled.wait(), 60)
        processes.kill("worker-0", signal.SIGKILL)
        assert first.poll() is not None
        processes.start("worker-1", "worker")

        def texts() -> list[str]:
            return [r.json["data"]["message"]["text"] for r in receiver.requests]

        expected = {f"{c}:{n}" for c in range(chats) for n in range(per_chat)}
        await receiver.wait(lambda: expected <= set(texts()) and texts().count("0:3") >= 2, timeout=90)
    by_text: dict[str, set[str]] = {}
    for received in receiver.requests:
        by_text.setdefault(received.json["data"]["message"]["text"], set()).add(received.id)
    assert set(by_text) == expected  # nothing lost
    assert all(len(ids) == 1 for ids in by_text.values())  # webhook-id stable, even across processes
    # Per chat, in order: repeats only of the delivery in flight at the kill, right where it was.
    for c in range(chats):
        sequence = [t for t in texts() if t.startswith(f"{c}:")]
        collapsed = [t for i, t in enumerate(sequence) if i == 0 or sequence[i - 1] != t]
        assert collapsed == [f"{c}:{n}" for n in range(per_chat)], sequence
