from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, WhatsAppDriver
from app.contracts import sim_control_stream, sim_inbound_stream, sim_outbound_stream, sim_pairing_key
from app.kit.db import AsyncSessionMaker
from app.main import create_app
from tests.support import bearer, insert_other_tenant_store, post_store, signup

PAIRING = json.dumps({"code": "2@current-code,xyz", "expires_at": "2030-01-01T00:00:00+00:00"})


async def entries(redis: Redis, stream: str) -> list[dict[str, str]]:
    reply: list[tuple[str, dict[str, str]]] = await redis.xrange(stream)  # type: ignore[assignment]
    return [fields for _id, fields in reply]


# --- scan --------------------------------------------------------------------------------------------------------
async def test_scan_without_a_qr_showing_is_a_conflict(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    response = await client.post(f"/v1/sim/stores/{store_id}/scan")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "no_qr_to_scan"
    assert f"/v1/stores/{store_id}/link" in error["message"]
    assert await redis.exists(sim_control_stream(store_id)) == 0


async def test_scan_pins_the_current_code_and_the_phone(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    await redis.set(sim_pairing_key(store_id), PAIRING, ex=60)
    response = await client.post(f"/v1/sim/stores/{store_id}/scan", json={"phone": "+54 9 11 6666-1234"})
    assert response.status_code == 202
    assert response.json() == {"phone": "+5491166661234"}
    assert await entries(redis, sim_control_stream(store_id)) == [
        {"kind": "scan", "phone": "+5491166661234", "code": "2@current-code,xyz"}
    ]


async def test_scan_without_a_body_uses_a_random_phone(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    await redis.set(sim_pairing_key(store_id), PAIRING, ex=60)
    response = await client.post(f"/v1/sim/stores/{store_id}/scan")
    assert response.status_code == 202
    phone = response.json()["phone"]
    assert re.fullmatch(r"\+549115555\d{4}", phone)
    [entry] = await entries(redis, sim_control_stream(store_id))
    assert entry["phone"] == phone


async def test_scan_rejects_a_bad_phone(client: AsyncClient) -> None:
    store_id = await post_store(client)
    response = await client.post(f"/v1/sim/stores/{store_id}/scan", json={"phone": "12"})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["body.phone"]


# --- inbound -----------------------------------------------------------------------------------------------------
async def test_inbound_queues_the_message_for_the_device(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    before = datetime.now(UTC)
    response = await client.post(
        f"/v1/sim/stores/{store_id}/inbound", json={"from": "+54 9 11 6666-0000", "text": "hola"}
    )
    assert response.status_code == 202
    message_id = response.json()["id"]
    assert re.fullmatch(r"3EB0[0-9A-F]{16}", message_id)
    [entry] = await entries(redis, sim_inbound_stream(store_id))
    assert entry == {
        "id": message_id,
        "from": "5491166660000@s.whatsapp.net",
        "name": "",
        "text": "hola",
        "ts": entry["ts"],
    }
    sent_at = datetime.fromtimestamp(int(entry["ts"]) / 1000, UTC)
    assert before - timedelta(seconds=1) <= sent_at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_inbound_keeps_a_given_id_and_name(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    body = {"from": "+5491166660000", "text": "¿tienen pan?", "id": "ABC123", "name": "Marta"}
    response = await client.post(f"/v1/sim/stores/{store_id}/inbound", json=body)
    assert response.status_code == 202
    assert response.json() == {"id": "ABC123"}
    [entry] = await entries(redis, sim_inbound_stream(store_id))
    assert (entry["id"], entry["name"], entry["text"]) == ("ABC123", "Marta", "¿tienen pan?")


async def test_inbound_from_a_lid_with_or_without_its_number(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    for extra in ({"lid": "98765432109876"}, {"lid": "98765432109876", "hide_phone": True}):
        body = {"from": "+5491166660000", "text": "hola"} | extra
        response = await client.post(f"/v1/sim/stores/{store_id}/inbound", json=body)
        assert response.status_code == 202
    shown, hidden = await entries(redis, sim_inbound_stream(store_id))
    assert (shown["from"], shown["from_alt"]) == ("98765432109876@lid", "5491166660000@s.whatsapp.net")
    assert hidden["from"] == "98765432109876@lid" and "from_alt" not in hidden
    response = await client.post(
        f"/v1/sim/stores/{store_id}/inbound", json={"from": "+5491166660000", "text": "x", "lid": "12ab"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "+5491166660000", "text": ""}, "body.text"),
        ({"from": "+5491166660000", "text": "x" * 4097}, "body.text"),
        ({"from": "+5491166660000"}, "body"),  # neither a text nor media
        ({"from": "not a phone", "text": "hola"}, "body.from"),
        ({"text": "hola"}, "body.from"),
    ],
    ids=["empty-text", "long-text", "no-text", "bad-from", "no-from"],
)
async def test_inbound_rejects_bad_bodies(
    client: AsyncClient, redis: Redis, body: dict[str, Any], field: str
) -> None:
    store_id = await post_store(client)
    response = await client.post(f"/v1/sim/stores/{store_id}/inbound", json=body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert await redis.exists(sim_inbound_stream(store_id)) == 0


async def test_inbound_text_of_4096_characters_is_accepted(client: AsyncClient) -> None:
    store_id = await post_store(client)
    body = {"from": "+5491166660000", "text": "x" * 4096}
    assert (await client.post(f"/v1/sim/stores/{store_id}/inbound", json=body)).status_code == 202


# --- outbound ----------------------------------------------------------------------------------------------------
async def test_outbound_lists_what_the_store_sent_oldest_first(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    stream = sim_outbound_stream(store_id)
    sent = [
        ("3EB0A", "5491166660000@s.whatsapp.net", "hola", 1_700_000_000_000),
        ("3EB0B", "5491177770000@s.whatsapp.net", "buen día", 1_700_000_001_000),
        ("3EB0C", "5491166660000@s.whatsapp.net", "¿algo más?", 1_700_000_002_500),
    ]
    for message_id, chat, text, ts in sent:
        await redis.xadd(stream, {"id": message_id, "chat": chat, "text": text, "ts": str(ts)})

    response = await client.get(f"/v1/sim/stores/{store_id}/outbound")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["id"], i["chat"], i["text"]) for i in items] == [(m, c, t) for m, c, t, _ in sent]
    assert datetime.fromisoformat(items[2]["timestamp"].replace("Z", "+00:00")) == datetime.fromtimestamp(
        1_700_000_002.5, UTC
    )

    for chat in ("+54 9 11 6666-0000", "5491166660000@s.whatsapp.net"):
        response = await client.get(f"/v1/sim/stores/{store_id}/outbound", params={"chat": chat})
        assert [i["id"] for i in response.json()["items"]] == ["3EB0A", "3EB0C"]


async def test_outbound_of_a_store_that_sent_nothing_is_empty(client: AsyncClient) -> None:
    store_id = await post_store(client)
    response = await client.get(f"/v1/sim/stores/{store_id}/outbound")
    assert response.json() == {"items": []}


async def test_outbound_rejects_a_bad_chat(client: AsyncClient) -> None:
    store_id = await post_store(client)
    response = await client.get(f"/v1/sim/stores/{store_id}/outbound", params={"chat": "nobody"})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["query.chat"]


# --- faults ------------------------------------------------------------------------------------------------------
async def test_faults_are_queued_on_the_control_stream(client: AsyncClient, redis: Redis) -> None:
    store_id = await post_store(client)
    kinds = ["disconnect", "logout", "send_failure"]
    for kind in kinds:
        response = await client.post(f"/v1/sim/stores/{store_id}/fault", json={"kind": kind})
        assert response.status_code == 202
        assert response.json() == {"kind": kind}
    assert await entries(redis, sim_control_stream(store_id)) == [{"kind": kind} for kind in kinds]


@pytest.mark.parametrize("body", [{"kind": "explode"}, {}, {"kind": None}])
async def test_fault_rejects_an_unknown_kind(client: AsyncClient, redis: Redis, body: dict[str, Any]) -> None:
    store_id = await post_store(client)
    response = await client.post(f"/v1/sim/stores/{store_id}/fault", json=body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["body.kind"]
    assert await redis.exists(sim_control_stream(store_id)) == 0


# --- scoping and mounting ----------------------------------------------------------------------------------------
async def test_other_tenants_and_unknown_stores_are_404(
    client: AsyncClient, redis: Redis, sessionmaker: AsyncSessionMaker
) -> None:
    other = await insert_other_tenant_store(sessionmaker)
    await redis.set(sim_pairing_key(other), PAIRING, ex=60)
    for store_id in (other, str(uuid.uuid4()), "nope"):
        for method, path, body in (
            ("POST", "scan", None),
            ("POST", "inbound", {"from": "+5491166660000", "text": "hola"}),
            ("GET", "outbound", None),
            ("POST", "fault", {"kind": "disconnect"}),
        ):
            response = await client.request(method, f"/v1/sim/stores/{store_id}/{path}", json=body)
            assert response.status_code == 404, (store_id, path)
            assert response.json()["error"]["code"] == "store_not_found"
    assert await redis.exists(sim_control_stream(other), sim_inbound_stream(other)) == 0


async def test_sim_endpoints_exist_only_with_the_simulator_driver(
    settings: Settings, engine: AsyncEngine, redis: Redis
) -> None:
    app = create_app(settings.model_copy(update={"whatsapp_driver": WhatsAppDriver.neonize}))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        http.headers.update(bearer(await signup(http)))
        store = await http.post("/v1/stores", json={"name": "Real"})
        assert store.status_code == 201  # the stores routes are there
        store_id = store.json()["id"]
        for method, path, body in (
            ("POST", "scan", None),
            ("POST", "inbound", {"from": "+5491166660000", "text": "hola"}),
            ("GET", "outbound", None),
            ("POST", "fault", {"kind": "disconnect"}),
        ):
            response = await http.request(method, f"/v1/sim/stores/{store_id}/{path}", json=body)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        assert not any(p.startswith("/v1/sim") for p in (await http.get("/openapi.json")).json()["paths"])
