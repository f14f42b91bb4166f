from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from app.kit.db import AsyncSessionMaker
from app.models import Booking, Conversation
from tests.bots.helpers import create_conversation
from tests.support import insert_other_tenant_store, post_store
from workers.bots.base import Order, OrderLine
from workers.bots.tools import DatabaseBotTools

BOOKING = {
    "services": [{"name": "Corte", "duration_minutes": 30}],
    "opening_hours": {"mon": [["09:00", "13:00"]], "fri": [{"start": "10:00", "end": "18:00"}]},
}


def fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    return [detail["field"] for detail in body["details"]]


async def test_put_and_get_the_bot(client: AsyncClient) -> None:
    store_id = await post_store(client)
    response = await client.get(f"/v1/stores/{store_id}/bot")
    assert response.json() == {"kind": "echo", "config": {}}  # a new store echoes

    response = await client.put(f"/v1/stores/{store_id}/bot", json={"kind": "booking", "config": BOOKING})
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    # Stored as validated: defaults filled in, opening ranges in one shape.
    assert config["timezone"] == "America/Argentina/Buenos_Aires" and config["language"] == "es"
    assert config["slot_minutes"] == 30 and config["days_ahead"] == 7
    assert config["opening_hours"]["mon"] == [{"start": "09:00", "end": "13:00"}]
    assert (await client.get(f"/v1/stores/{store_id}/bot")).json() == {"kind": "booking", "config": config}

    menu = {"greeting": "Hola", "options": [{"title": "Horarios", "answer": "9 a 18"}], "language": "en"}
    response = await client.put(f"/v1/stores/{store_id}/bot", json={"kind": "menu", "config": menu})
    assert response.status_code == 200 and response.json()["kind"] == "menu"
    response = await client.put(f"/v1/stores/{store_id}/bot", json={"kind": "echo"})
    assert response.json() == {"kind": "echo", "config": {}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "chatgpt", "config": {}}, ["body.kind"]),
        ({"kind": "echo", "config": {"language": "es"}}, ["body.config.language"]),
        (
            {
                "kind": "booking",
                "config": {**BOOKING, "services": [{"name": "Corte", "duration_minutes": 0}]},
            },
            ["body.config.services.0.duration_minutes"],
        ),
        ({"kind": "booking", "config": {**BOOKING, "timezone": "Mars/Olympus"}}, ["body.config.timezone"]),
        (
            {"kind": "booking", "config": {**BOOKING, "opening_hours": {"mon": [["13:00", "25:00"]]}}},
            ["body.config.opening_hours.mon.0.end"],
        ),
        (
            {"kind": "booking", "config": {**BOOKING, "opening_hours": {"monday": []}}},
            ["body.config.opening_hours.monday.[key]"],
        ),
        (
            {"kind": "menu", "config": {"greeting": "Hola", "options": [{"title": "Nada"}]}},
            ["body.config.options.0"],
        ),
        (
            {"kind": "orders", "config": {"catalog": [{"id": "a", "name": "A", "price_cents": -1}]}},
            ["body.config.catalog.0.price_cents"],
        ),
        ({"kind": "orders", "config": {"catalog": []}}, ["body.config.catalog"]),
        (
            {"kind": "menu", "config": {"greeting": "Hola", "options": [], "colour": "red"}},
            ["body.config.options", "body.config.colour"],
        ),
    ],
)
async def test_a_bad_bot_is_a_422_naming_the_field(
    client: AsyncClient, body: dict[str, Any], expected: list[str]
) -> None:
    store_id = await post_store(client)
    assert fields(await client.put(f"/v1/stores/{store_id}/bot", json=body)) == expected
    assert (await client.get(f"/v1/stores/{store_id}/bot")).json()["kind"] == "echo"  # nothing written


async def test_another_tenants_store_is_not_found(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    other = await insert_other_tenant_store(sessionmaker)
    for store_id in (other, str(uuid.uuid4()), "not-a-uuid"):
        requests = [
            client.get(f"/v1/stores/{store_id}/bot"),
            client.put(f"/v1/stores/{store_id}/bot", json={"kind": "echo", "config": {}}),
            client.get(f"/v1/stores/{store_id}/orders"),
            client.get(f"/v1/stores/{store_id}/bookings"),
        ]
        for request in requests:
            response = await request
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "store_not_found"


async def test_orders_newest_first_and_paginated(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    conversation_id = await create_conversation(sessionmaker, uuid.UUID(store_id), "ana@s.whatsapp.net")
    async with sessionmaker() as session, session.begin():
        tools = DatabaseBotTools(
            session,
            store_id=uuid.UUID(store_id),
            conversation_id=conversation_id,
            chat_jid="ana@s.whatsapp.net",
        )
        for quantity in range(1, 6):
            line = OrderLine("Muzzarella", quantity, 500000)
            await tools.place_order(Order(id=uuid.uuid4(), lines=[line], total_cents=quantity * 500000))
    # Another tenant's orders never show up.
    other = await insert_other_tenant_store(sessionmaker)
    other_conversation = await create_conversation(sessionmaker, other, "x@s.whatsapp.net")
    async with sessionmaker() as session, session.begin():
        tools = DatabaseBotTools(
            session,
            store_id=other,
            conversation_id=other_conversation,
            chat_jid="x@s.whatsapp.net",
        )
        await tools.place_order(Order(id=uuid.uuid4(), lines=[], total_cents=0))

    numbers, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/v1/stores/{store_id}/orders", params=params)).json()
        numbers.append([order["number"] for order in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert numbers == [[5, 4], [3, 2], [1]]
    first = (await client.get(f"/v1/stores/{store_id}/orders", params={"limit": 1})).json()["items"][0]
    assert first["lines"] == [{"item": "Muzzarella", "quantity": 5, "unit_price_cents": 500000}]
    assert first["chat_jid"] == "ana@s.whatsapp.net" and first["total_cents"] == 2500000

    assert fields(await client.get(f"/v1/stores/{store_id}/orders", params={"cursor": "nope"})) == [
        "query.cursor"
    ]
    assert fields(await client.get(f"/v1/stores/{store_id}/orders", params={"limit": 0})) == ["query.limit"]


async def test_upcoming_bookings_soonest_first_and_paginated(
    client: AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    store_id = await post_store(client)
    conversation_id = await create_conversation(sessionmaker, uuid.UUID(store_id), "ana@s.whatsapp.net")
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    async with sessionmaker() as session, session.begin():
        tools = DatabaseBotTools(
            session,
            store_id=uuid.UUID(store_id),
            conversation_id=conversation_id,
            chat_jid="ana@s.whatsapp.net",
        )
        for hours in (3, 1, 2, 4):
            assert await tools.book("Corte", soon + timedelta(hours=hours), f"Cliente {hours}") is not None
        cancelled = await tools.book("Color", soon, "Cancelada")
        assert cancelled is not None and await tools.cancel_booking(cancelled.id)
        # Past bookings are not upcoming.
        session.add(
            Booking(
                store_id=uuid.UUID(store_id),
                conversation_id=conversation_id,
                service="Corte",
                starts_at=soon - timedelta(days=3),
                customer_name="Pasada",
            )
        )

    names, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/stores/{store_id}/bookings", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        names.append([booking["customer_name"] for booking in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == [["Cliente 1", "Cliente 2", "Cliente 3"], ["Cliente 4"]]
    first = (await client.get(f"/v1/stores/{store_id}/bookings", params={"limit": 1})).json()["items"][0]
    assert first["service"] == "Corte" and first["status"] == "booked"
    assert first["chat_jid"] == "ana@s.whatsapp.net"
    assert datetime.fromisoformat(first["starts_at"]) == soon + timedelta(hours=1)

    # A deleted chat leaves its bookings to the store, without a chat.
    async with sessionmaker() as session, session.begin():
        await session.delete(await session.get(Conversation, conversation_id))
    first = (await client.get(f"/v1/stores/{store_id}/bookings", params={"limit": 1})).json()["items"][0]
    assert first["chat_jid"] is None and first["customer_name"] == "Cliente 1"
    bad = await client.get(f"/v1/stores/{store_id}/bookings", params={"cursor": "WyJ4Il0"})
    assert fields(bad) == ["query.cursor"]
