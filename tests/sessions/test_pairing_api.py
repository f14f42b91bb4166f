"""Pairing end to end: the API, the session manager and the simulated phone, as a store owner would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis

from app.config import Settings
from app.kit.db import AsyncSessionMaker
from sessions.manager import SessionManager
from tests.sessions.helpers import fast_settings, running_manager, wait_for, wait_status
from tests.streaming import sse_events


@pytest.fixture
async def manager(
    settings: Settings, sessionmaker: AsyncSessionMaker, redis: Redis, redis_url: str
) -> AsyncIterator[SessionManager]:
    quick = fast_settings(settings, sim_qr_first_seconds=1.0, sim_qr_next_seconds=0.5, sim_qr_count=3)
    async with running_manager(quick, sessionmaker, redis, redis_url) as manager:
        yield manager


async def _next(
    events: AsyncGenerator[tuple[str, dict[str, Any]]], name: str, **match: Any
) -> dict[str, Any]:
    """The next event called `name` whose data has the given values (others are skipped)."""
    async for event_name, data in events:
        if event_name == name and all(data.get(k) == v for k, v in match.items()):
            return data
    raise AssertionError(f"the stream ended before a {name} event {match}")


async def test_link_then_qr_over_sse_then_scan_connects_the_store(
    manager: SessionManager, sse_client: AsyncClient
) -> None:
    store = (await sse_client.post("/v1/stores", json={"name": "Clínica Norte"})).json()
    store_id = store["id"]
    async with asyncio.timeout(20), sse_client.stream("GET", f"/v1/stores/{store_id}/events") as response:
        events = sse_events(response)
        assert (await anext(events))[1]["status"] == "unlinked"

        assert (await sse_client.post(f"/v1/stores/{store_id}/link")).status_code == 202
        await _next(events, "status", status="linking")
        qr = await _next(events, "qr")
        assert qr["code"].startswith("2@")
        # The QR endpoint serves the same code, and as an image.
        assert (await sse_client.get(f"/v1/stores/{store_id}/qr")).json()["code"] == qr["code"]
        svg = await sse_client.get(f"/v1/stores/{store_id}/qr", params={"format": "svg"})
        assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

        scan = await sse_client.post(f"/v1/sim/stores/{store_id}/scan", json={"phone": "+54 9 11 5555-0000"})
        assert scan.status_code == 202
        connected = await _next(events, "status", status="connected")
        assert connected["phone_number"] == "+5491155550000"
        await events.aclose()

    body = (await sse_client.get(f"/v1/stores/{store_id}")).json()
    assert (body["status"], body["phone_number"], body["status_reason"]) == (
        "connected",
        "+5491155550000",
        None,
    )
    no_qr = await sse_client.get(f"/v1/stores/{store_id}/qr")
    assert no_qr.status_code == 404 and no_qr.json()["error"]["code"] == "qr_not_available"


async def test_an_unscanned_qr_ends_in_error_and_a_new_link_starts_over(
    manager: SessionManager, sse_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = (await sse_client.post("/v1/stores", json={"name": "Verdulería"})).json()["id"]
    await sse_client.post(f"/v1/stores/{store_id}/link")
    store = await wait_status(sessionmaker, store_id, "error", timeout=15)
    assert store.status_reason is not None and "QR code not scanned in time" in store.status_reason
    assert (await sse_client.get(f"/v1/stores/{store_id}/qr")).status_code == 404

    assert (await sse_client.post(f"/v1/stores/{store_id}/link")).status_code == 202
    await wait_status(sessionmaker, store_id, "linking")
    qr = await sse_client.get(f"/v1/stores/{store_id}/qr")
    assert qr.status_code == 200


async def test_pairing_by_phone_number_while_a_qr_is_showing(
    manager: SessionManager, sse_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = (await sse_client.post("/v1/stores", json={"name": "Pizzería"})).json()["id"]
    await sse_client.post(f"/v1/stores/{store_id}/link")
    await wait_status(sessionmaker, store_id, "linking")

    response = await sse_client.post(f"/v1/stores/{store_id}/pairing-code", json={"phone": "+5491144440000"})
    assert response.status_code == 200, response.text
    code = response.json()["code"]
    assert len(code) == 8

    # The owner types the code on the phone (the simulator's scan accepts the code too).
    await sse_client.post(f"/v1/sim/stores/{store_id}/scan", json={"phone": "+5491144440000"})
    store = await wait_status(sessionmaker, store_id, "connected")
    assert store.phone_number == "+5491144440000" and store.pairing_phone is None


async def test_asking_again_for_the_same_number_answers_the_same_code_at_once(
    manager: SessionManager, sse_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    # A retry or a double click: the session manager asks WhatsApp only when the number changes, so the second
    # request used to wait its 15 s for nothing and answer 504 (found by tests/api/test_schemathesis.py).
    store_id = (await sse_client.post("/v1/stores", json={"name": "Panadería"})).json()["id"]
    await sse_client.post(f"/v1/stores/{store_id}/link")
    await wait_status(sessionmaker, store_id, "linking")
    path = f"/v1/stores/{store_id}/pairing-code"

    first = await sse_client.post(path, json={"phone": "+5491144440000"})
    assert first.status_code == 200, first.text
    async with asyncio.timeout(3):  # the wait for a new code is 15 s
        again = await sse_client.post(path, json={"phone": "+54 9 11 4444-0000"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()

    # Another number is another code.
    other = await sse_client.post(path, json={"phone": "+5491133330000"})
    assert other.status_code == 200, other.text
    assert other.json()["code"] != first.json()["code"]


async def test_logout_through_the_api(
    manager: SessionManager, sse_client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = (await sse_client.post("/v1/stores", json={"name": "Ferretería"})).json()["id"]
    await sse_client.post(f"/v1/stores/{store_id}/link")
    await wait_status(sessionmaker, store_id, "linking")
    # `linking` is written just before the QR code shows: a scan in between finds nothing to scan.
    await wait_for(lambda: _shows_qr(sse_client, store_id), what="a QR code showing")
    assert (await sse_client.post(f"/v1/sim/stores/{store_id}/scan", json={})).status_code == 202
    await wait_status(sessionmaker, store_id, "connected")

    assert (await sse_client.post(f"/v1/stores/{store_id}/logout")).status_code == 202
    store = await wait_status(sessionmaker, store_id, "logged_out")
    assert store.device_jid is None

    # Linking again pairs a new device from scratch.
    await sse_client.post(f"/v1/stores/{store_id}/link")
    await wait_status(sessionmaker, store_id, "linking")


async def _shows_qr(client: AsyncClient, store_id: str) -> bool:
    return (await client.get(f"/v1/stores/{store_id}/qr")).status_code == 200
