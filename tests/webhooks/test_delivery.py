"""Deliveries to a real receiver on 127.0.0.1: signatures, retries, order per chat, window, replay."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.config import Settings
from app.contracts import store_events_channel
from app.kit.db import AsyncSessionMaker
from app.models import Webhook, WebhookDelivery
from tests.messages.helpers import add_conversation, add_message
from tests.support import post_store
from tests.webhooks.helpers import Clock, Received, eventually, running_receiver, running_webhooks
from workers.webhooks.service import HEADS_PER_READ


async def create_webhook(
    client: AsyncClient, store_id: str, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/stores/{store_id}/webhooks", json={"url": url, "events": events or ["message.received"]}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def verify(secret: str, received: Received) -> Any:
    return StandardWebhook(secret).verify(received.body, received.headers)


async def deliveries(sessionmaker: AsyncSessionMaker, webhook_id: str) -> list[WebhookDelivery]:
    async with sessionmaker() as session:
        statement = select(WebhookDelivery).where(WebhookDelivery.webhook_id == uuid.UUID(webhook_id))
        return list((await session.scalars(statement.order_by(WebhookDelivery.seq))).all())


async def test_deliveries_are_signed_the_standard_way_and_a_rotated_secret_verifies_for_24_hours(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    store_id = await post_store(private_client)
    clock = Clock()
    async with running_receiver() as receiver:
        hook = await create_webhook(private_client, store_id, receiver.url)
        assert hook["secret"].startswith("whsec_")
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url, clock=clock) as worker:
            await worker.review()
            chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net", "Ana")
            message_id = await add_message(sessionmaker, store_id, chat, text="hola", status="received")
            await receiver.wait(lambda: len(receiver.requests) == 1)
            first = receiver.requests[0]
            payload = verify(hook["secret"], first)
            assert payload["type"] == "message.received"
            assert payload["data"]["message"]["id"] == str(message_id)
            assert payload["data"]["message"]["text"] == "hola"
            assert payload["data"]["message"]["chat_jid"] == "5491100000001@s.whatsapp.net"
            assert first.id.startswith("msg_")

            rotated = (
                await private_client.post(f"/v1/stores/{store_id}/webhooks/{hook['id']}/rotate-secret")
            ).json()
            await add_message(sessionmaker, store_id, chat, text="otra", status="received")
            await receiver.wait(lambda: len(receiver.requests) == 2)
            second = receiver.requests[1]
            assert verify(rotated["secret"], second)["data"]["message"]["text"] == "otra"
            assert verify(hook["secret"], second)  # the old secret still verifies, within its 24 h

            clock.advance(hours=24, minutes=1)
            await add_message(sessionmaker, store_id, chat, text="tercera", status="received")
            await receiver.wait(lambda: len(receiver.requests) == 3)
            third = receiver.requests[2]
            assert verify(rotated["secret"], third)["data"]["message"]["text"] == "tercera"
            with pytest.raises(WebhookVerificationError):
                verify(hook["secret"], third)
    # Tampering is caught by the library: our signature covers the body.
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(rotated["secret"]).verify(third.body.replace(b"tercera", b"TERCERA"), third.headers)


async def due_pending(sessionmaker: AsyncSessionMaker, clock: Clock) -> int:
    """Chains whose head (oldest pending delivery) is due: work the worker still has to do now."""
    async with sessionmaker() as session:
        heads = (
            select(WebhookDelivery.next_attempt_at)
            .ext(distinct_on(WebhookDelivery.webhook_id, WebhookDelivery.order_key))
            .where(WebhookDelivery.status == "pending")
            .order_by(WebhookDelivery.webhook_id, WebhookDelivery.order_key, WebhookDelivery.seq)
            .subquery()
        )
        statement = select(heads.c.next_attempt_at).where(heads.c.next_attempt_at <= clock.now)
        return len((await session.scalars(statement)).all())


async def settle(sessionmaker: AsyncSessionMaker, clock: Clock, expected: int, webhook_id: str) -> None:
    """Every expected delivery written, and none left that is due (what is due has been attempted)."""

    async def done() -> bool:
        rows = await deliveries(sessionmaker, webhook_id)
        return len(rows) >= expected and await due_pending(sessionmaker, clock) == 0

    await eventually(done, what="every due delivery attempted")


def text_of(received: Received) -> str:
    text: str = received.json["data"]["message"]["text"]
    return text


async def test_a_failing_delivery_is_retried_with_backoff_and_holds_its_chat_but_not_the_others(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    store_id = await post_store(private_client)
    clock = Clock()
    # The first message fails twice (a 500, then a 503); everything else is accepted.
    failures = {"a1": [500, 503]}

    def policy(_n: int, received: Received) -> tuple[int, dict[str, str], float]:
        queue = failures.get(text_of(received), [])
        return (queue.pop(0) if queue else 200), {}, 0.0

    async with running_receiver(policy) as receiver:
        hook = await create_webhook(private_client, store_id, receiver.url)
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url, clock=clock) as worker:
            await worker.review()
            chat_a = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            chat_b = await add_conversation(sessionmaker, store_id, "5491100000002@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat_a, text="a1", status="received")
            await receiver.wait(lambda: len(receiver.answered) == 1)
            await settle(sessionmaker, clock, 1, hook["id"])
            # A later message of the same chat waits; another chat's does not.
            await add_message(sessionmaker, store_id, chat_a, text="a2", status="received")
            await add_message(sessionmaker, store_id, chat_b, text="b1", status="received")
            await receiver.wait(lambda: [text_of(r) for r in receiver.succeeded()] == ["b1"])
            await settle(sessionmaker, clock, 3, hook["id"])
            assert [text_of(r) for r in receiver.requests] == ["a1", "b1"]

            gaps = []
            for _ in range(2):
                [first, *_] = await deliveries(sessionmaker, hook["id"])
                assert first.status == "pending"
                gaps.append((first.next_attempt_at - clock.now).total_seconds())
                clock.now = first.next_attempt_at
                await worker.sweep()
                await receiver.wait(lambda n=len(receiver.answered): len(receiver.answered) == n + 1)
                await settle(sessionmaker, clock, 3, hook["id"])
            await receiver.wait(lambda: len(receiver.succeeded()) == 3)
            rows = await deliveries(sessionmaker, hook["id"])
    # Exponential backoff with jitter: 5 s then 10 s, each between half and all of it.
    assert 2.5 <= gaps[0] <= 5 and 5 <= gaps[1] <= 10, gaps
    a1_requests = [r for r in receiver.requests if text_of(r) == "a1"]
    assert len(a1_requests) == 3 and len({r.id for r in a1_requests}) == 1  # webhook-id stable across retries
    assert [text_of(r) for r in receiver.succeeded()] == ["b1", "a1", "a2"]
    assert [(d.status, d.attempts, d.response_status) for d in rows] == [
        ("succeeded", 3, 200),
        ("succeeded", 1, 200),
        ("succeeded", 1, 200),
    ]


async def test_a_4xx_is_not_retried_and_a_429_waits_for_its_retry_after(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    store_id = await post_store(private_client)
    clock = Clock()

    def policy(_n: int, received: Received) -> tuple[int, dict[str, str], float]:
        text = text_of(received)
        if text == "bad":
            return 400, {}, 0.0
        if text == "busy":
            return 429, {"Retry-After": "600"}, 0.0
        return 200, {}, 0.0

    async with running_receiver(policy) as receiver:
        hook = await create_webhook(private_client, store_id, receiver.url)
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url, clock=clock) as worker:
            await worker.review()
            chat_a = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            chat_b = await add_conversation(sessionmaker, store_id, "5491100000002@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat_a, text="bad", status="received")
            await add_message(sessionmaker, store_id, chat_a, text="after bad", status="received")
            await add_message(sessionmaker, store_id, chat_b, text="busy", status="received")
            await receiver.wait(lambda: len(receiver.answered) == 3)
            await settle(sessionmaker, clock, 3, hook["id"])
            bad, after_bad, busy = await deliveries(sessionmaker, hook["id"])
    assert (bad.status, bad.attempts, bad.response_status) == (
        "failed",
        1,
        400,
    )  # given up: the chat moved on
    assert after_bad.status == "succeeded"
    assert busy.status == "pending" and busy.response_status == 429
    assert (busy.next_attempt_at - clock.now).total_seconds() >= 600


async def test_order_per_chat_holds_while_the_receiver_fails_30_percent_of_the_time_and_is_slow_at_times(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    store_id = await post_store(private_client)
    clock = Clock()
    rng = random.Random(13)

    def policy(_n: int, _received: Received) -> tuple[int, dict[str, str], float]:
        status = 503 if rng.random() < 0.3 else 200
        delay = rng.uniform(0.02, 0.15) if rng.random() < 0.1 else 0.0
        return status, {}, delay

    chats, per_chat = 6, 10
    async with running_receiver(policy) as receiver:
        hook = await create_webhook(private_client, store_id, receiver.url)
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url, clock=clock) as worker:
            await worker.review()
            conversations = [
                await add_conversation(sessionmaker, store_id, f"54911000000{c:02d}@s.whatsapp.net")
                for c in range(chats)
            ]
            for n in range(per_chat):
                for c, conversation in enumerate(conversations):
                    await add_message(
                        sessionmaker, store_id, conversation, text=f"{c}:{n}", status="received"
                    )
            for _ in range(40):
                await settle(sessionmaker, clock, chats * per_chat, hook["id"])
                if len(receiver.succeeded()) == chats * per_chat:
                    break
                clock.advance(hours=1)  # past any backoff
                await worker.sweep()
            rows = await deliveries(sessionmaker, hook["id"])
    assert [d.status for d in rows] == ["succeeded"] * chats * per_chat
    assert len(receiver.requests) > chats * per_chat  # failures happened, and were retried
    by_chat: dict[str, list[int]] = {}
    for received in receiver.succeeded():
        chat, n = text_of(received).split(":")
        by_chat.setdefault(chat, []).append(int(n))
    assert by_chat == {str(c): list(range(per_chat)) for c in range(chats)}


async def test_a_webhook_failing_for_its_whole_window_is_disabled_and_a_replay_recovers_the_window(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    settings = private_settings.model_copy(update={"webhooks_retry_window_seconds": 3 * 3600})
    store_id = await post_store(private_client)
    clock = Clock()
    status = {"now": 500}
    started = datetime.now(UTC) - timedelta(seconds=1)
    pubsub = redis.pubsub()
    await pubsub.subscribe(store_events_channel(store_id))
    async with running_receiver(lambda _n, _r: (status["now"], {}, 0.0)) as receiver:
        hook = await create_webhook(private_client, store_id, receiver.url)
        async with running_webhooks(settings, sessionmaker, redis, redis_url, clock=clock) as worker:
            await worker.review()
            chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat, text="uno", status="received")
            await add_message(sessionmaker, store_id, chat, text="dos", status="received")
            for _ in range(20):
                await settle(sessionmaker, clock, 2, hook["id"])
                read = (await private_client.get(f"/v1/stores/{store_id}/webhooks/{hook['id']}")).json()
                if not read["enabled"]:
                    break
                clock.advance(hours=1)
                await worker.sweep()
            assert not read["enabled"] and "failed" in read["disabled_reason"], read
            assert {d.status for d in await deliveries(sessionmaker, hook["id"])} == {"failed"}
            notice = None
            while notice is None:
                notice = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert json.loads(notice["data"])["type"] == "webhook_disabled"
            # Only the first message was ever attempted: its chat waited behind it.
            assert {text_of(r) for r in receiver.requests} == {"uno"}
            first_id = receiver.requests[0].id

            # The receiver is back: enable the webhook and replay the window.
            status["now"] = 200
            patched = await private_client.patch(
                f"/v1/stores/{store_id}/webhooks/{hook['id']}", json={"enabled": True}
            )
            assert patched.json()["enabled"] and patched.json()["disabled_reason"] is None
            response = await private_client.post(
                f"/v1/stores/{store_id}/webhooks/{hook['id']}/replay",
                json={"since": started.isoformat(), "until": datetime.now(UTC).isoformat()},
            )
            assert response.status_code == 202 and response.json() == {"deliveries": 2}, response.text
            await receiver.wait(lambda: len(receiver.succeeded()) == 2)
    await pubsub.aclose()
    assert [text_of(r) for r in receiver.succeeded()] == ["uno", "dos"]
    assert receiver.succeeded()[0].id == first_id  # a replay keeps the webhook-id: receivers can skip dupes


async def test_redeliver_sends_a_delivery_again_with_the_same_webhook_id(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    store_id = await post_store(private_client)
    async with running_receiver() as receiver:
        hook = await create_webhook(private_client, store_id, receiver.url)
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url) as worker:
            await worker.review()
            chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat, text="hola", status="received")
            await receiver.wait(lambda: len(receiver.succeeded()) == 1)
            log = await private_client.get(f"/v1/stores/{store_id}/webhooks/{hook['id']}/deliveries")
            [item] = log.json()["items"]
            response = await private_client.post(
                f"/v1/stores/{store_id}/webhooks/{hook['id']}/deliveries/{item['id']}/redeliver"
            )
            assert response.status_code == 202, response.text
            await receiver.wait(lambda: len(receiver.succeeded()) == 2)
    first, second = receiver.succeeded()
    assert first.id == second.id == item["message_id"]


async def test_a_new_webhook_receives_events_from_its_creation_on_only(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    """Not what happened before it, nor while the store had no webhook (an earlier one's old position)."""
    store_id = await post_store(private_client)
    chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
    async with running_receiver() as receiver:
        await add_message(sessionmaker, store_id, chat, text="before any", status="received")
        first = await create_webhook(private_client, store_id, receiver.url)
        assert (
            await private_client.delete(f"/v1/stores/{store_id}/webhooks/{first['id']}")
        ).status_code == 204
        await add_message(sessionmaker, store_id, chat, text="while none", status="received")
        await create_webhook(private_client, store_id, receiver.url)
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url) as worker:
            await worker.review()
            await add_message(sessionmaker, store_id, chat, text="after", status="received")
            await receiver.wait(lambda: len(receiver.requests) >= 1)
            await add_message(sessionmaker, store_id, chat, text="after again", status="received")
            await receiver.wait(lambda: len(receiver.requests) >= 2)
    assert [text_of(r) for r in receiver.requests] == ["after", "after again"]


async def delivered_chain(
    client: AsyncClient,
    settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
    texts: list[str],
) -> tuple[list[str], int, list[WebhookDelivery], Webhook]:
    """One chat's messages, all written before the worker owns the store (its first fan-out writes the whole
    chain at once), delivered to a receiver that answers 400 to "bad"; returns the texts received, the attempts
    made, the deliveries and the webhook."""
    store_id = await post_store(client)
    clock = Clock()

    def policy(_n: int, received: Received) -> tuple[int, dict[str, str], float]:
        return (400 if text_of(received) == "bad" else 200), {}, 0.0

    async def idle() -> bool:
        return worker.lanes.lanes() == 0

    async with running_receiver(policy) as receiver:
        hook = await create_webhook(client, store_id, receiver.url)
        chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
        for text in texts:
            await add_message(sessionmaker, store_id, chat, text=text, status="received")
        async with running_webhooks(settings, sessionmaker, redis, redis_url, clock=clock) as worker:
            await worker.review()
            await receiver.wait(lambda: len(receiver.answered) == len(texts))
            await settle(sessionmaker, clock, len(texts), hook["id"])
            await eventually(idle, what="every trigger acknowledged")
            attempts = worker.attempts
        rows = await deliveries(sessionmaker, hook["id"])
    async with sessionmaker() as session:
        webhook = await session.get(Webhook, uuid.UUID(hook["id"]))
    assert webhook is not None
    return [text_of(r) for r in receiver.requests], attempts, rows, webhook


async def test_a_chain_longer_than_one_read_is_delivered_in_order_each_once(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    """More pending deliveries in a chain than one read of its heads brings: each attempted once, in order; the
    triggers of those an earlier trigger of the chain reached cost no attempt."""
    texts = [f"m{n}" for n in range(HEADS_PER_READ * 2 + 3)]
    received, attempts, rows, _ = await delivered_chain(
        private_client, private_settings, sessionmaker, redis, redis_url, texts
    )
    assert received == texts
    assert attempts == len(texts)
    assert [r.status for r in rows] == ["succeeded"] * len(texts)


async def test_a_success_after_a_4xx_in_the_same_read_clears_the_failure_streak(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    """The webhook read with a chain's heads predates the 4xx of the chain's first delivery (it had no
    `failing_since` then): the success right after it must still clear the streak, or a healthy webhook would
    be disabled a window later."""
    texts = ["bad", "ok 1", "ok 2"]
    assert len(texts) <= HEADS_PER_READ
    received, _, rows, webhook = await delivered_chain(
        private_client, private_settings, sessionmaker, redis, redis_url, texts
    )
    assert received == texts
    assert [r.status for r in rows] == ["failed", "succeeded", "succeeded"]
    assert webhook.enabled and webhook.failing_since is None
