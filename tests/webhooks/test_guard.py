"""The SSRF guard at delivery time (MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS off): a name that resolves to a
private address now (DNS rebinding) is refused after resolution; redirects are never followed."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.models import WebhookDelivery
from tests.messages.helpers import add_conversation, add_message
from tests.support import post_store
from tests.webhooks.helpers import Received, eventually, running_receiver, running_webhooks


async def finished(sessionmaker: AsyncSessionMaker, webhook_id: str) -> list[WebhookDelivery]:
    async with sessionmaker() as session:
        statement = select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == uuid.UUID(webhook_id), WebhookDelivery.status != "pending"
        )
        return list((await session.scalars(statement)).all())


async def test_a_name_that_resolves_to_loopback_at_delivery_is_refused(
    client: AsyncClient, settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> None:
    """The name passed the check at creation (it did not resolve to anything private then); at delivery its DNS
    answers 127.0.0.1, where a receiver listens: nothing may reach it."""
    store_id = await post_store(client)
    lookups: list[str] = []

    async def rebinding_dns(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    async with running_receiver() as receiver:
        url = f"http://rebind.example.com:{receiver.port}/hook"
        created = await client.post(
            f"/v1/stores/{store_id}/webhooks", json={"url": url, "events": ["message.received"]}
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        async with running_webhooks(
            settings, sessionmaker, redis, redis_url, lookup=rebinding_dns, allow_private=False
        ) as worker:
            await worker.review()
            chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat, text="hola", status="received")
            [delivery] = await eventually(
                lambda: finished(sessionmaker, hook["id"]), what="the delivery refused"
            )
    assert lookups == ["rebind.example.com"]
    assert receiver.requests == []
    assert delivery.status == "failed" and delivery.attempts == 1  # refused is final, not retried
    assert delivery.last_error is not None and "127.0.0.1" in delivery.last_error
    assert "not a public address" in delivery.last_error


async def test_the_same_receiver_is_reached_when_private_networks_are_allowed(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    """The control of the test above: with the operator's setting on, the same DNS answer is delivered to, and
    the request carries the name it was addressed to (Host) while connecting to the address checked."""
    store_id = await post_store(private_client)

    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with running_receiver() as receiver:
        url = f"http://rebind.example.com:{receiver.port}/hook"
        hook = (
            await private_client.post(
                f"/v1/stores/{store_id}/webhooks", json={"url": url, "events": ["message.received"]}
            )
        ).json()
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url, lookup=dns) as worker:
            await worker.review()
            chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat, text="hola", status="received")
            await receiver.wait(lambda: len(receiver.requests) == 1)
    assert receiver.requests[0].headers["host"] == f"rebind.example.com:{receiver.port}"
    assert hook["id"]


async def test_redirects_are_not_followed(
    private_client: AsyncClient,
    private_settings: Settings,
    sessionmaker: AsyncSessionMaker,
    redis: Redis,
    redis_url: str,
) -> None:
    store_id = await post_store(private_client)
    target: dict[str, str] = {}

    def policy(_n: int, received: Received) -> tuple[int, dict[str, str], float]:
        if received.path == "/hook":
            return 307, {"Location": target["url"]}, 0.0
        return 200, {}, 0.0

    async with running_receiver(policy) as receiver:
        target["url"] = f"http://127.0.0.1:{receiver.port}/internal"
        hook = (
            await private_client.post(
                f"/v1/stores/{store_id}/webhooks", json={"url": receiver.url, "events": ["message.received"]}
            )
        ).json()
        async with running_webhooks(private_settings, sessionmaker, redis, redis_url) as worker:
            await worker.review()
            chat = await add_conversation(sessionmaker, store_id, "5491100000001@s.whatsapp.net")
            await add_message(sessionmaker, store_id, chat, text="hola", status="received")
            [delivery] = await eventually(
                lambda: finished(sessionmaker, hook["id"]), what="the delivery given up"
            )
    assert [r.path for r in receiver.requests] == ["/hook"]  # /internal never reached
    assert delivery.status == "failed" and delivery.response_status == 307
    assert delivery.last_error is not None and "redirect" in delivery.last_error
