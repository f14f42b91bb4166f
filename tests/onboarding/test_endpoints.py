from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import update

from app.contracts import qr_event, status_event, store_events_channel, store_qr_key
from app.kit.db import AsyncSessionMaker
from app.models import OnboardingLink, Store
from tests.streaming import sse_events
from tests.support import ClientMaker, post_store

QR_CODE = "2@onboarding-qr,abc"


async def make_link(client: AsyncClient, store_id: str, **body: Any) -> tuple[str, str]:
    """A link for the store: its id and its token (the last part of its URL)."""
    response = await client.post(f"/v1/stores/{store_id}/onboarding-links", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], created["url"].rsplit("/", 1)[1]


async def set_store(sessionmaker: AsyncSessionMaker, store_id: str, **values: Any) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Store).where(Store.id == uuid.UUID(store_id)).values(**values))


async def test_a_link_reaches_its_store_status_qr_and_linking(
    client: AsyncClient, make_client: ClientMaker, redis: Redis
) -> None:
    store_id = await post_store(client, "Peluquería")
    response = await client.post(f"/v1/stores/{store_id}/onboarding-links", json={})
    created = response.json()
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)  # default 24 h
    token = created["url"].rsplit("/", 1)[1]
    assert created["url"].startswith("http://test/onboard/onb_") and len(token) > 40

    page = make_client()  # no account, no key: only the token
    status = (await page.get(f"/v1/onboarding/{token}")).json()
    assert status["store_name"] == "Peluquería" and status["status"] == "unlinked"
    assert (await page.post(f"/v1/onboarding/{token}/link")).status_code == 202
    assert (await client.get(f"/v1/stores/{store_id}")).json()["desired_state"] == "linked"

    await redis.set(
        store_qr_key(store_id), qr_event(QR_CODE, datetime.now(UTC) + timedelta(seconds=60)), ex=60
    )
    assert (await page.get(f"/v1/onboarding/{token}/qr")).json()["code"] == QR_CODE
    svg = await page.get(f"/v1/onboarding/{token}/qr", params={"format": "svg"})
    assert svg.headers["content-type"] == "image/svg+xml"

    # The token is no credential for anything else.
    assert (await make_client(token).get(f"/v1/stores/{store_id}")).status_code == 401
    assert (await make_client(token).get("/v1/stores")).status_code == 401
    listed = (await client.get(f"/v1/stores/{store_id}/onboarding-links")).json()["items"]
    assert [link["id"] for link in listed] == [created["id"]] and token not in str(listed)


async def test_events_over_the_link_end_once_connected(
    client: AsyncClient, make_client: ClientMaker, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    _, token = await make_link(client, store_id)
    page = make_client(streaming=True)
    async with asyncio.timeout(10), page.stream("GET", f"/v1/onboarding/{token}/events") as response:
        assert response.status_code == 200
        events = sse_events(response)
        name, data = await anext(events)
        assert (name, data["status"]) == ("status", "unlinked")
        await set_store(sessionmaker, store_id, status="connected", phone_number="+5491155550000")
        await redis.publish(
            store_events_channel(store_id),
            status_event("connected", phone_number="+5491155550000", reason=None),
        )
        name, data = await anext(events)
        assert (name, data) == ("status", {"type": "status", "status": "connected"})  # not the number
        assert [e async for e in events] == []  # and the stream ends


async def test_a_link_is_dead_after_connect_even_if_the_store_disconnects_later(
    client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    _, token = await make_link(client, store_id)
    page = make_client()
    await set_store(sessionmaker, store_id, status="connected", phone_number="+5491155550000")
    assert (await page.get(f"/v1/onboarding/{token}")).json() == {
        "status": "connected",
        "store_name": None,
        "status_reason": None,
        "status_reason_code": None,
        "expires_at": None,
    }
    await set_store(sessionmaker, store_id, status="logged_out", phone_number=None)
    assert (await page.get(f"/v1/onboarding/{token}")).json()["status"] == "connected"
    for method, path in (("POST", "/link"), ("GET", "/qr"), ("GET", "/events")):
        response = await page.request(method, f"/v1/onboarding/{token}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "onboarding_link_not_found"
    assert (await client.get(f"/v1/stores/{store_id}/onboarding-links")).json()["items"] == []


async def test_expired_revoked_and_guessed_links_get_nothing(
    client: AsyncClient, other_client: AsyncClient, make_client: ClientMaker, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    revoked_id, revoked = await make_link(client, store_id)
    expired_id, expired = await make_link(client, store_id, expires_in=60)
    _, live = await make_link(client, store_id)
    assert (
        await other_client.delete(f"/v1/stores/{store_id}/onboarding-links/{revoked_id}")
    ).status_code == 404
    assert (await client.delete(f"/v1/stores/{store_id}/onboarding-links/{revoked_id}")).status_code == 204
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(OnboardingLink)
            .where(OnboardingLink.id == uuid.UUID(expired_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    page = make_client()
    for token in (revoked, expired, live[:-1] + ("x" if live[-1] != "x" else "y"), "onb_" + "A" * 43, "x"):
        for method, path in (("GET", ""), ("POST", "/link"), ("GET", "/qr"), ("GET", "/events")):
            response = await page.request(method, f"/v1/onboarding/{token}{path}")
            assert response.status_code == 404, (token, path)
            assert response.json()["error"]["code"] == "onboarding_link_not_found"
            # Only the holder of a real, expired link is told it expired (the page says: ask for a new one).
            expected = {"reason": "expired"} if token == expired else None
            assert response.json()["error"]["details"] == expected, (token, path)
        pairing = await page.post(f"/v1/onboarding/{token}/pairing-code", json={"phone": "+5491155550000"})
        assert pairing.status_code == 404
    assert (await page.get(f"/v1/onboarding/{live}")).status_code == 200  # the live one still works
    assert (await client.get(f"/v1/stores/{store_id}")).json()["desired_state"] == "unlinked"


async def test_lifetime_is_bounded(client: AsyncClient) -> None:
    store_id = await post_store(client)
    for expires_in in (0, 59, 7 * 24 * 3600 + 1):
        response = await client.post(
            f"/v1/stores/{store_id}/onboarding-links", json={"expires_in": expires_in}
        )
        assert response.status_code == 422, expires_in
    await make_link(client, store_id, expires_in=7 * 24 * 3600)


async def test_viewers_and_read_only_keys_cannot_make_links(
    client: AsyncClient, viewer_client: AsyncClient, make_client: ClientMaker
) -> None:
    store_id = await post_store(client)
    assert (await viewer_client.post(f"/v1/stores/{store_id}/onboarding-links", json={})).status_code == 403
    key = (await client.post("/v1/api-keys", json={"name": "ro", "scopes": ["stores:read"]})).json()["key"]
    assert (
        await make_client(key).post(f"/v1/stores/{store_id}/onboarding-links", json={})
    ).status_code == 403
