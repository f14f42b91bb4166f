"""The webhooks API: create (secret once, stored encrypted), read, change, delete, rotate; validation; log paging;
the SSRF guard at creation (MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS off, as by default)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from httpx import AsyncClient
from sqlalchemy import insert

from app.kit.db import AsyncSessionMaker
from app.models import Webhook, WebhookDelivery
from tests.support import post_store

PUBLIC_URL = (
    "https://hooks.example.com/mostrador"  # does not resolve here: accepted, checked at each delivery
)


async def test_create_shows_the_secret_once_and_stores_it_encrypted(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    response = await client.post(
        f"/v1/stores/{store_id}/webhooks",
        json={"url": PUBLIC_URL, "events": ["message.received", "store.status"], "description": "CRM"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    assert created["events"] == ["message.received", "store.status"]

    listed = (await client.get(f"/v1/stores/{store_id}/webhooks")).json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    one = (await client.get(f"/v1/stores/{store_id}/webhooks/{created['id']}")).json()
    assert "secret" not in one and one["description"] == "CRM"
    async with sessionmaker() as session:
        row = await session.get(Webhook, uuid.UUID(created["id"]))
        assert row is not None and created["secret"] not in row.secret_encrypted
        assert created["secret"].removeprefix("whsec_") not in row.secret_encrypted

    patched = await client.patch(
        f"/v1/stores/{store_id}/webhooks/{created['id']}",
        json={"events": ["message.sent"], "enabled": False},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["message.sent"] and patched.json()["enabled"] is False
    assert patched.json()["disabled_reason"] == "disabled by a user"

    rotated = await client.post(f"/v1/stores/{store_id}/webhooks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"] and rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["previous_secret_expires_at"]

    assert (await client.delete(f"/v1/stores/{store_id}/webhooks/{created['id']}")).status_code == 204
    missing = await client.get(f"/v1/stores/{store_id}/webhooks/{created['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "webhook_not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": PUBLIC_URL, "events": ["message.deleted"]}, "body.events.0"),
        ({"url": PUBLIC_URL, "events": []}, "body.events"),
        ({"url": PUBLIC_URL}, "body.events"),
        ({"url": PUBLIC_URL, "events": ["store.status"], "secret": "mine"}, "body.secret"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: AsyncClient, body: dict[str, object], field: str
) -> None:
    store_id = await post_store(client)
    response = await client.post(f"/v1/stores/{store_id}/webhooks", json=body)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
        "ftp://hooks.example.com/hook",
        "file:///etc/passwd",
        "https://user:password@hooks.example.com/hook",
    ],
)
async def test_urls_that_could_reach_inside_are_refused(client: AsyncClient, url: str) -> None:
    store_id = await post_store(client)
    response = await client.post(
        f"/v1/stores/{store_id}/webhooks", json={"url": url, "events": ["store.status"]}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("unsafe_url", "validation_error")
    assert (await client.get(f"/v1/stores/{store_id}/webhooks")).json() == []  # nothing half-written


async def test_a_patch_to_an_unsafe_url_is_refused(client: AsyncClient) -> None:
    store_id = await post_store(client)
    created = (
        await client.post(
            f"/v1/stores/{store_id}/webhooks", json={"url": PUBLIC_URL, "events": ["store.status"]}
        )
    ).json()
    response = await client.patch(
        f"/v1/stores/{store_id}/webhooks/{created['id']}", json={"url": "http://169.254.169.254/"}
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "unsafe_url"
    assert (await client.get(f"/v1/stores/{store_id}/webhooks/{created['id']}")).json()["url"] == PUBLIC_URL


async def test_the_delivery_log_is_keyset_paged_newest_first(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    created = (
        await client.post(
            f"/v1/stores/{store_id}/webhooks", json={"url": PUBLIC_URL, "events": ["store.status"]}
        )
    ).json()
    async with sessionmaker() as session, session.begin():
        await session.execute(
            insert(WebhookDelivery),
            [
                {
                    "id": uuid.uuid4(),
                    "webhook_id": uuid.UUID(created["id"]),
                    "store_id": uuid.UUID(store_id),
                    "event_id": n,
                    "event": "store.status",
                    "message_id": f"msg_{n}",
                    "order_key": "store",
                    "payload": {"n": n},
                    "status": "failed" if n % 2 else "succeeded",
                    "attempts": 1,
                    "next_attempt_at": datetime.now(UTC),
                    "give_up_at": datetime.now(UTC),
                }
                for n in range(5)
            ],
        )
    url = f"/v1/stores/{store_id}/webhooks/{created['id']}/deliveries"
    first = (await client.get(url, params={"limit": 3})).json()
    second = (await client.get(url, params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [d["message_id"] for d in first["items"] + second["items"]] == [
        f"msg_{n}" for n in (4, 3, 2, 1, 0)
    ]
    assert second["next_cursor"] is None
    failed = (await client.get(url, params={"status": "failed"})).json()
    assert [d["message_id"] for d in failed["items"]] == ["msg_3", "msg_1"]
    assert all(d["next_attempt_at"] is None for d in failed["items"])
    bad = await client.get(url, params={"cursor": "not-ours"})
    assert bad.status_code == 422


async def test_a_viewer_reads_webhooks_but_cannot_create_them(
    client: AsyncClient, viewer_client: AsyncClient
) -> None:
    store_id = await post_store(client)
    response = await viewer_client.post(
        f"/v1/stores/{store_id}/webhooks", json={"url": PUBLIC_URL, "events": ["store.status"]}
    )
    assert response.status_code == 403
    assert (await viewer_client.get(f"/v1/stores/{store_id}/webhooks")).status_code == 200
