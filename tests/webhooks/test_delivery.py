"""Deliveries to a real receiver on 127.0.0.1: signatures, retries, order per chat, window, replay."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from app.models import WebhookDelivery
from tests.messages.helpers import add_conversation, add_message
from tests.support import post_store
from tests.webhooks.helpers import Clock, Received, running_receiver, running_webhooks


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

            clock.advance(hours=24, seconds=1)
            await add_message(sessionmaker, store_id, chat, text="tercera", status="received")
            await receiver.wait(lambda: len(receiver.requests) == 3)
            third = receiver.requests[2]
            assert verify(rotated["secret"], third)["data"]["message"]["text"] == "tercera"
            with pytest.raises(WebhookVerificationError):
                verify(hook["secret"], third)
    # Tampering is caught by the library: our signature covers the body.
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(rotated["secret"]).verify(third.body.replace(b"tercera", b"TERCERA"), third.headers)
