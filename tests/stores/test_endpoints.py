from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy import update

import app.stores.endpoints as store_endpoints_module
import app.stores.service as store_service_module
from app.contracts import (
    REASON_QR_TIMEOUT,
    REASON_TEMPORARY_BAN,
    STORES_CHANGED_CHANNEL,
    messages_stream,
    outbox_stream,
    pairing_code_event,
    qr_event,
    status_event,
    store_events_channel,
    store_pairing_code_key,
    store_qr_key,
)
from app.kit.db import AsyncSessionMaker
from app.models import Store
from tests.streaming import sse_events
from tests.support import insert_other_tenant_store

QR_CODE = "2@simulated-qr-code,abcdefgh"
HANDOFF_30 = {"settings": {"handoff": {"auto_resume_minutes": 30}}}


# --- helpers ------------------------------------------------------------------------------------------------
async def create_store(client: AsyncClient, name: str = "Kiosco Don Pepe") -> dict[str, Any]:
    response = await client.post("/v1/stores", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_store(sessionmaker: AsyncSessionMaker, store_id: str, **values: Any) -> None:
    """Write what the session manager would (status, phone number)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Store).where(Store.id == uuid.UUID(store_id)).values(**values))


async def load_store(sessionmaker: AsyncSessionMaker, store_id: str) -> Store:
    async with sessionmaker() as session:
        store = await session.get(Store, uuid.UUID(store_id))
        assert store is not None
        return store


async def subscribe(redis: Redis, channel: str) -> PubSub:
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    message = await pubsub.get_message(timeout=2)
    assert message is not None and message["type"] == "subscribe"
    return pubsub


async def published(pubsub: PubSub, expected: str, timeout: float = 2) -> bool:
    """Whether `expected` is published within `timeout`. Pub/sub channels are shared by every database of a
    Redis server, so other xdist workers' publications may come in between: they are skipped."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
                if message is not None and message["data"] == expected:
                    return True
    except TimeoutError:
        return False


def expires_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


# --- an httpx transport that streams (for server-sent events) ----------------------------------------------
# --- create, get, list ---------------------------------------------------------------------------------------
async def test_create_returns_the_store(client: AsyncClient) -> None:
    store = await create_store(client, "  Kiosco Don Pepe  ")
    assert store["name"] == "Kiosco Don Pepe"  # stripped
    assert store["status"] == "unlinked"
    assert store["desired_state"] == "unlinked"
    assert store["status_reason"] is None
    assert store["phone_number"] is None
    assert set(store) == {
        "id",
        "name",
        "status",
        "status_reason",
        "status_reason_code",
        "desired_state",
        "phone_number",
        "settings",
        "created_at",
        "updated_at",
    }
    assert store["settings"] == {}
    uuid.UUID(store["id"])
    datetime.fromisoformat(store["created_at"])

    response = await client.get(f"/v1/stores/{store['id']}")
    assert response.status_code == 200
    assert response.json() == store


async def test_the_api_creates_no_streams(client: AsyncClient, redis: Redis) -> None:
    """Consumer groups are the business of the streams' owners (the worker, the session manager): each creates
    its groups when it takes a store."""
    store = await create_store(client)
    assert (await client.post(f"/v1/stores/{store['id']}/link")).status_code == 202
    assert await redis.exists(messages_stream(store["id"]), outbox_stream(store["id"])) == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": 12}],
    ids=["missing", "empty", "blank", "too-long", "not-a-string"],
)
async def test_create_rejects_a_bad_name_naming_the_field(client: AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/v1/stores", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "body.name" in error["message"]
    assert [d["field"] for d in error["details"]] == ["body.name"]


async def test_name_of_200_characters_is_accepted(client: AsyncClient) -> None:
    store = await create_store(client, "x" * 200)
    assert len(store["name"]) == 200


async def test_list_paginates_in_creation_order(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    created = [(await create_store(client, f"Store {i}"))["id"] for i in range(5)]
    await insert_other_tenant_store(sessionmaker)  # never listed

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/stores", params=params)
        assert response.status_code == 200
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert pages == 3

    everything = (await client.get("/v1/stores")).json()
    assert [s["id"] for s in everything["items"]] == created
    assert everything["next_cursor"] is None


async def test_list_when_the_page_is_exactly_full_has_no_next_cursor(client: AsyncClient) -> None:
    for i in range(2):
        await create_store(client, f"Store {i}")
    body = (await client.get("/v1/stores", params={"limit": 2})).json()
    assert len(body["items"]) == 2
    assert body["next_cursor"] is None


async def test_list_of_a_new_tenant_is_empty(client: AsyncClient) -> None:
    assert (await client.get("/v1/stores")).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"cursor": "WyJ4IiwgInkiXQ"}, "query.cursor"),  # base64 of a JSON list that is not a cursor
    ],
)
async def test_list_rejects_bad_parameters(client: AsyncClient, params: dict[str, Any], field: str) -> None:
    response = await client.get("/v1/stores", params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]


async def test_unknown_malformed_and_other_tenants_stores_are_the_same_404(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    await create_store(client)  # the caller's tenant has stores of its own
    other = str(await insert_other_tenant_store(sessionmaker))
    unknown = str(uuid.uuid4())

    def expected(store_id: str) -> dict[str, Any]:
        return {
            "error": {
                "code": "store_not_found",
                "message": "store not found",
                "details": {"store_id": store_id},
            }
        }

    for store_id in (other, unknown, "not-a-uuid"):
        for method, path in (
            ("GET", ""),
            ("POST", "/link"),
            ("POST", "/logout"),
            ("GET", "/qr"),
            ("GET", "/events"),
        ):
            response = await client.request(method, f"/v1/stores/{store_id}{path}")
            assert response.status_code == 404, (method, path)
            assert response.json() == expected(store_id), (method, path)
        response = await client.post(f"/v1/stores/{store_id}/pairing-code", json={"phone": "+5491155550000"})
        assert response.status_code == 404
        assert response.json() == expected(store_id)
        response = await client.patch(f"/v1/stores/{store_id}", json=HANDOFF_30)
        assert response.status_code == 404
        assert response.json() == expected(store_id)

    # and nothing was changed on the other tenant's store
    other_row = await load_store(sessionmaker, other)
    assert (other_row.desired_state, other_row.settings) == ("unlinked", {})


# --- settings --------------------------------------------------------------------------------------------------
async def test_patch_replaces_the_given_settings_groups_and_keeps_the_others(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await set_store(sessionmaker, store["id"], settings={"sending": {"typing": False}})
    response = await client.patch(f"/v1/stores/{store['id']}", json=HANDOFF_30)
    assert response.status_code == 200, response.text
    expected = {"sending": {"typing": False}, "handoff": {"auto_resume_minutes": 30}}
    assert response.json()["settings"] == expected
    assert (await client.get(f"/v1/stores/{store['id']}")).json()["settings"] == expected

    off = {"settings": {"handoff": {"auto_resume_minutes": None}}}
    response = await client.patch(f"/v1/stores/{store['id']}", json=off)
    assert response.json()["settings"]["handoff"] == {"auto_resume_minutes": None}
    assert (await load_store(sessionmaker, store["id"])).settings["sending"] == {"typing": False}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"settings": {"handoff": {"auto_resume_minutes": 0}}}, "body.settings.handoff.auto_resume_minutes"),
        (
            {"settings": {"handoff": {"auto_resume_minutes": "soon"}}},
            "body.settings.handoff.auto_resume_minutes",
        ),
        ({"settings": {"handoff": {"auto_resume": 5}}}, "body.settings.handoff.auto_resume"),
        ({"settings": {"colour": "red"}}, "body.settings.colour"),
        ({"name": "Renamed"}, "body.settings"),
    ],
    ids=["zero-minutes", "not-a-number", "unknown-field", "unknown-group", "no-settings"],
)
async def test_patch_rejects_bad_settings_naming_the_field(
    client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    store = await create_store(client)
    response = await client.patch(f"/v1/stores/{store['id']}", json=body)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert (await client.get(f"/v1/stores/{store['id']}")).json()["settings"] == {}


# --- link, logout ----------------------------------------------------------------------------------------------
async def test_link_sets_the_desired_state_then_notifies_the_session_manager(
    client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await set_store(sessionmaker, store["id"], pairing_phone="+5491155550000")
    pubsub = await subscribe(redis, STORES_CHANGED_CHANNEL)
    try:
        response = await client.post(f"/v1/stores/{store['id']}/link")
        assert response.status_code == 202
        assert response.json()["desired_state"] == "linked"
        assert await published(pubsub, store["id"])
    finally:
        await pubsub.aclose()
    row = await load_store(sessionmaker, store["id"])
    assert row.desired_state == "linked"
    assert row.pairing_phone is None  # linking by QR drops a pending pairing-code request


async def test_linking_a_connected_store_is_accepted_without_change(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await set_store(
        sessionmaker, store["id"], desired_state="linked", status="connected", phone_number="+5491155550000"
    )
    before = await load_store(sessionmaker, store["id"])
    response = await client.post(f"/v1/stores/{store['id']}/link")
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["desired_state"], body["phone_number"]) == (
        "connected",
        "linked",
        "+5491155550000",
    )
    assert (await load_store(sessionmaker, store["id"])).updated_at == before.updated_at


async def test_logout_sets_the_desired_state_then_notifies(
    client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await set_store(sessionmaker, store["id"], desired_state="linked", status="connected")
    pubsub = await subscribe(redis, STORES_CHANGED_CHANNEL)
    try:
        response = await client.post(f"/v1/stores/{store['id']}/logout")
        assert response.status_code == 202
        assert response.json()["desired_state"] == "logged_out"
        assert await published(pubsub, store["id"])
    finally:
        await pubsub.aclose()
    assert (await load_store(sessionmaker, store["id"])).desired_state == "logged_out"


# --- QR code ---------------------------------------------------------------------------------------------------
async def test_qr_as_json_svg_and_png(
    client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await client.post(f"/v1/stores/{store['id']}/link")
    await set_store(sessionmaker, store["id"], status="linking")
    expires_at = expires_in(60)
    await redis.set(store_qr_key(store["id"]), qr_event(QR_CODE, expires_at), ex=60)

    response = await client.get(f"/v1/stores/{store['id']}/qr")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["code"] == QR_CODE
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == expires_at

    svg = await client.get(f"/v1/stores/{store['id']}/qr", params={"format": "svg"})
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text

    png = await client.get(f"/v1/stores/{store['id']}/qr", params={"format": "png"})
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_qr_rejects_an_unknown_format(client: AsyncClient) -> None:
    store = await create_store(client)
    response = await client.get(f"/v1/stores/{store['id']}/qr", params={"format": "gif"})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["query.format"]


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ({}, "POST /v1/stores/{id}/link first"),
        ({"desired_state": "linked", "status": "linking"}, "expired; a new one comes shortly"),
        (
            {"desired_state": "linked", "status": "connected", "phone_number": "+5491155550000"},
            "already connected",
        ),
        ({"desired_state": "linked", "status": "error", "status_reason": "no such host"}, "no such host"),
    ],
    ids=["not-linking", "expired", "connected", "error"],
)
async def test_qr_404_says_why_there_is_none(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, state: dict[str, Any], says: str
) -> None:
    store = await create_store(client)
    await set_store(sessionmaker, store["id"], **state)
    response = await client.get(f"/v1/stores/{store['id']}/qr")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "qr_not_available"
    assert says.format(id=store["id"]) in error["message"]


async def test_a_connected_store_shows_no_leftover_qr(
    client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await set_store(sessionmaker, store["id"], desired_state="linked", status="connected")
    await redis.set(store_qr_key(store["id"]), qr_event(QR_CODE, expires_in(20)), ex=20)
    response = await client.get(f"/v1/stores/{store['id']}/qr")
    assert response.status_code == 404
    assert "already connected" in response.json()["error"]["message"]


# --- events (server-sent) --------------------------------------------------------------------------------------
async def test_events_start_with_the_status_and_the_current_qr_then_relay(
    sse_client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(sse_client)
    await set_store(sessionmaker, store["id"], desired_state="linked", status="linking")
    await redis.set(store_qr_key(store["id"]), qr_event(QR_CODE, expires_in(60)), ex=60)
    channel = store_events_channel(store["id"])

    async with asyncio.timeout(10), sse_client.stream("GET", f"/v1/stores/{store['id']}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert await anext(events) == (
            "status",
            {
                "type": "status",
                "status": "linking",
                "phone_number": None,
                "reason": None,
                "reason_code": None,
            },
        )
        name, qr = await anext(events)
        assert (name, qr["type"], qr["code"]) == ("qr", "qr", QR_CODE)

        # The subscription was confirmed before the initial events were sent: this cannot be missed.
        await redis.publish(channel, status_event("connected", phone_number="+5491155550000", reason=None))
        assert await anext(events) == (
            "status",
            {
                "type": "status",
                "status": "connected",
                "phone_number": "+5491155550000",
                "reason": None,
                "reason_code": None,
            },
        )
        await redis.publish(channel, pairing_code_event("ABCD1234", expires_in(60)))
        name, code = await anext(events)
        assert (name, code["code"]) == ("pairing_code", "ABCD1234")
        await events.aclose()

    # The client left: the subscription is gone with it.
    async with asyncio.timeout(5):
        for _ in range(100):
            if (await redis.pubsub_numsub(channel))[0][1] == 0:
                break
            await asyncio.sleep(0.05)
    assert (await redis.pubsub_numsub(channel))[0][1] == 0


async def test_events_without_a_qr_start_with_the_status_only(
    sse_client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(sse_client)
    await set_store(
        sessionmaker, store["id"], status="connected", desired_state="linked", phone_number="+5491155550000"
    )
    async with asyncio.timeout(10), sse_client.stream("GET", f"/v1/stores/{store['id']}/events") as response:
        events = sse_events(response)
        name, status = await anext(events)
        assert (name, status["status"], status["phone_number"]) == ("status", "connected", "+5491155550000")
        await redis.publish(
            store_events_channel(store["id"]), status_event("reconnecting", phone_number=None, reason="x")
        )
        name, status = await anext(events)
        assert (name, status["status"]) == ("status", "reconnecting")  # not a QR in between
        await events.aclose()


async def test_events_keep_the_connection_alive_with_pings(
    sse_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_endpoints_module, "EVENTS_PING_SECONDS", 0.2)
    store = await create_store(sse_client)
    loop = asyncio.get_running_loop()
    pings: list[float] = []
    lines: list[str] = []
    async with asyncio.timeout(5), sse_client.stream("GET", f"/v1/stores/{store['id']}/events") as response:
        async for line in response.aiter_lines():  # the raw stream: sse_events() would skip the comments
            lines.append(line)
            if line.startswith(": ping"):  # an SSE comment: EventSource ignores it, proxies see traffic
                pings.append(loop.time())
                if len(pings) == 3:
                    break
    assert lines[0] == "event: status"  # the initial state, then only pings: nothing else happens
    assert json.loads(lines[1].removeprefix("data: "))["status"] == "unlinked"
    assert len(pings) == 3
    # One ping per interval while nothing else happens, not a burst.
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert all(gap >= 0.15 for gap in gaps), gaps


# --- pairing code ----------------------------------------------------------------------------------------------
async def test_pairing_code_waits_for_the_session_manager(
    client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    key = store_pairing_code_key(store["id"])
    await redis.set(key, pairing_code_event("OLDCODE1", expires_in(60)), ex=60)  # from an earlier request
    pubsub = await subscribe(redis, STORES_CHANGED_CHANNEL)
    expires_at = expires_in(60)

    async def session_manager() -> None:
        assert await published(pubsub, store["id"])
        row = await load_store(sessionmaker, store["id"])
        assert (row.desired_state, row.pairing_phone) == ("linked", "+5491155550000")
        await asyncio.sleep(0.3)
        await redis.set(key, pairing_code_event("NEWCODE1", expires_at), ex=60)

    manager = asyncio.create_task(session_manager())
    try:
        response = await client.post(
            f"/v1/stores/{store['id']}/pairing-code", json={"phone": "+54 9 11 5555-0000"}
        )
        await manager
    finally:
        await pubsub.aclose()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == "NEWCODE1"
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == expires_at


async def test_pairing_code_times_out_with_a_clear_error(
    client: AsyncClient, sessionmaker: AsyncSessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_service_module, "PAIRING_CODE_TIMEOUT_SECONDS", 0.3)
    store = await create_store(client)
    response = await client.post(f"/v1/stores/{store['id']}/pairing-code", json={"phone": "5491155550000"})
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "pairing_code_timeout"
    assert "no pairing code within 0.3 s" in error["message"]
    assert error["details"]["timeout_seconds"] == 0.3
    # the request itself was recorded: the manager may still answer, and GET /events will carry it
    row = await load_store(sessionmaker, store["id"])
    assert (row.desired_state, row.pairing_phone) == ("linked", "+5491155550000")


async def test_pairing_code_for_a_connected_store_is_a_conflict(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store = await create_store(client)
    await set_store(sessionmaker, store["id"], desired_state="linked", status="connected")
    response = await client.post(f"/v1/stores/{store['id']}/pairing-code", json={"phone": "+5491155550000"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "store_already_connected"
    assert (await load_store(sessionmaker, store["id"])).pairing_phone is None


@pytest.mark.parametrize(
    "phone", ["", "12345", "+54 9 11 5555 0000 1234 5", "+54 (11) 5555-0000", "abc", None]
)
async def test_pairing_code_rejects_a_bad_phone(client: AsyncClient, phone: str | None) -> None:
    store = await create_store(client)
    response = await client.post(f"/v1/stores/{store['id']}/pairing-code", json={"phone": phone})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["body.phone"]


async def test_status_reason_codes_follow_the_drivers_reasons(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    """The page branches on `status_reason_code`, not on the reason's words."""
    store_id = str((await create_store(client))["id"])
    cases = [
        ("error", f"{REASON_QR_TIMEOUT}; link again to get a new QR code", "qr_expired"),
        ("error", f"{REASON_TEMPORARY_BAN} (SENT_TOO_MANY_SAME_MESSAGE, lifted in 1:00:00)", "banned"),
        ("error", "cannot reach WhatsApp: DNS lookup failed", "connection_error"),
        ("logged_out", "logged out from the phone", "logged_out"),
        ("reconnecting", "connection lost", None),
        ("connected", None, None),
    ]
    for status, reason, code in cases:
        await set_store(sessionmaker, store_id, status=status, status_reason=reason)
        body = (await client.get(f"/v1/stores/{store_id}")).json()
        assert (body["status_reason"], body["status_reason_code"]) == (reason, code)
