from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from app.kit.db import AsyncSessionMaker
from app.models import Order
from tests.bots.helpers import create_store, joined, open_chat

NOW = datetime(2031, 3, 3, 13, 5, tzinfo=UTC)


def orders_config(language: str = "es", **overrides: Any) -> dict[str, Any]:
    return {
        "language": language,
        "catalog": [
            {"id": "muzza", "name": "Muzzarella", "price_cents": 500000, "category": "Pizzas"},
            {"id": "coca", "name": "Coca-Cola 1.5 L", "price_cents": 250000, "category": "Bebidas"},
            {"id": "fuga", "name": "Fugazzeta", "price_cents": 600000, "category": "Pizzas"},
        ],
        "currency": "$",
        "delivery_enabled": True,
        "delivery_fee_cents": 80000,
        "pickup_enabled": True,
        **overrides,
    }


async def orders_of(sessionmaker: AsyncSessionMaker) -> list[Order]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Order).order_by(Order.store_id, Order.number)))


async def test_spanish_order_with_delivery(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="orders", config=orders_config(), customer_name="Ana")
    reply = await chat.send("hola")
    assert reply.replies[0] == "¡Hola! Bienvenido/a a Rulos. Estos son nuestros productos:"
    # Grouped by category; the numbers follow what is shown.
    assert reply.replies[1] == (
        "*Pizzas*\n1. Muzzarella: $5.000\n2. Fugazzeta: $6.000\n*Bebidas*\n3. Coca-Cola 1.5 L: $2.500"
    )
    assert "*2 x 1*" in reply.replies[2]

    reply = await chat.send("2 x 1")
    assert reply.replies[:2] == [
        "Agregué 2 x Muzzarella.",
        "Tu carrito:\n2 x Muzzarella: $10.000\nTotal: $10.000",
    ]
    assert chat.state["cart"] == [["muzza", 2]]
    assert (await chat.send("agregar 3 2")).replies[1].endswith("Total: $15.000")
    assert (await chat.send("1")).replies[1].endswith("Total: $20.000")  # a bare number adds one
    assert (await chat.send("quitar 1 1")).replies[0] == "Saqué 1 x Muzzarella."
    reply = await chat.send("sacar coca")  # by id; without a quantity the whole line goes
    assert reply.replies == ["Saqué 2 x Coca-Cola 1.5 L.", "Tu carrito:\n2 x Muzzarella: $10.000\nTotal: $10.000",
                             "Seguí agregando o escribí *pedir* para terminar."]  # fmt: skip
    assert (await chat.send("quitar 3")).replies == ["Coca-Cola 1.5 L no está en tu carrito."]
    assert (await chat.send("carrito")).replies[0].endswith("Total: $10.000")

    reply = await chat.send("pedir")
    assert reply.replies == [
        "¿Cómo lo querés recibir?\n1. Envío a domicilio ($800)\n2. Retiro en el local\n0. Volver"
    ]
    assert (await chat.send("7")).replies[0] == "No entendí tu mensaje."  # not an item: a wrong answer
    assert (await chat.send("1")).replies == ["¿A qué dirección lo enviamos?"]
    reply = await chat.send("Av. Siempreviva 742")
    assert reply.replies == [
        "Tu carrito:\n2 x Muzzarella: $10.000\n1 x Envío: $800\nTotal: $10.800\n"
        "Envío a: Av. Siempreviva 742\n¿Confirmás el pedido?\n1. Sí\n2. No"
    ]
    reply = await chat.send("sí")
    assert reply.replies == [
        "¡Pedido #1 confirmado! Total: $10.800.\nEnvío a: Av. Siempreviva 742\n¡Gracias por tu compra!"
    ]
    assert chat.state["cart"] == [] and chat.state["step"] == "browse"

    [order] = await orders_of(sessionmaker)
    assert (order.number, order.total_cents, order.fulfilment) == (1, 1080000, "delivery")
    assert order.address == "Av. Siempreviva 742" and order.customer_name == "Ana"
    assert order.lines == [
        {"item": "Muzzarella", "quantity": 2, "unit_price_cents": 500000},
        {"item": "Envío", "quantity": 1, "unit_price_cents": 80000},
    ]
    assert order.conversation_id == chat.conversation_id and order.status == "confirmed"


async def test_english_pickup_and_mistakes(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="orders", config=orders_config("en"))
    reply = await chat.send("2x1")  # a first message that is already an order: no catalog first
    assert reply.replies[:2] == [
        "Added 2 x Muzzarella.",
        "Your cart:\n2 x Muzzarella: $10,000\nTotal: $10,000",
    ]
    assert (await chat.send("9")).replies == ["I couldn't find item “9”. Type *menu* to see the list."]
    assert (await chat.send("0 x 2")).replies == ["The quantity must be between 1 and 99."]
    reply = await chat.send("what?")
    assert reply.replies[0] == "Sorry, I didn't get that." and reply.replies[1].startswith("How to order:")
    assert (await chat.send("help")).replies[0].startswith("How to order:\n• *2 x 3*: adds 2 of item 3")
    await chat.send("checkout")
    reply = await chat.send("pickup")
    assert reply.replies == [
        "Your cart:\n2 x Muzzarella: $10,000\nTotal: $10,000\nYou pick it up at the store.\n"
        "Shall I place the order?\n1. Yes\n2. No"
    ]
    reply = await chat.send("no")
    assert reply.replies[0].startswith("OK, I did not place the order. Your cart is saved")
    assert chat.state["cart"] == [["muzza", 2]]
    await chat.send("checkout")
    await chat.send("2")
    reply = await chat.send("yes")
    assert reply.replies[0] == "Order #1 confirmed! Total: $10,000.\nYou pick it up at the store.\nThank you!"
    [order] = await orders_of(sessionmaker)
    assert (order.fulfilment, order.address, order.total_cents) == ("pickup", None, 1000000)
    assert (await chat.send("checkout")).replies == ["Your cart is empty. Type *menu* to see the items."]


async def test_pickup_only_store_skips_the_question(sessionmaker: AsyncSessionMaker) -> None:
    config = orders_config(delivery_enabled=False)
    chat = await open_chat(sessionmaker, now=NOW, kind="orders", config=config)
    await chat.send("hola")
    await chat.send("1")
    reply = await chat.send("listo")
    assert reply.replies[0].endswith("Retirás en el local.\n¿Confirmás el pedido?\n1. Sí\n2. No")
    assert (await chat.send("vaciar")).replies == ["Vacié tu carrito."]  # a command leaves the checkout
    assert chat.state["step"] == "browse"


async def test_numbers_are_per_store_and_concurrent_checkouts_get_distinct_ones(
    sessionmaker: AsyncSessionMaker,
) -> None:
    store_a = await create_store(sessionmaker, kind="orders", config=orders_config(delivery_enabled=False))
    store_b = await create_store(sessionmaker, kind="orders", config=orders_config(delivery_enabled=False))
    chats = [
        await open_chat(sessionmaker, now=NOW, store_id=store, chat_jid=f"{i}@s.whatsapp.net")
        for i, store in enumerate((store_a, store_a, store_a, store_b))
    ]
    for chat in chats:
        for text in ("hola", "1", "pedir"):
            await chat.send(text)
    replies = await asyncio.gather(*(chat.send("si") for chat in chats))
    assert sorted(joined(r).split("\n")[0] for r in replies[:3]) == [
        "¡Pedido #1 confirmado! Total: $5.000.",
        "¡Pedido #2 confirmado! Total: $5.000.",
        "¡Pedido #3 confirmado! Total: $5.000.",
    ]
    assert replies[3].replies[0].startswith("¡Pedido #1 confirmado!")
    assert [(o.store_id, o.number) for o in await orders_of(sessionmaker)] == sorted(
        [(store_a, 1), (store_a, 2), (store_a, 3), (store_b, 1)]
    )


async def test_the_order_is_listed_by_the_api(client: AsyncClient, sessionmaker: AsyncSessionMaker) -> None:
    store = (await client.post("/v1/stores", json={"name": "Pizzería"})).json()
    response = await client.put(
        f"/v1/stores/{store['id']}/bot", json={"kind": "orders", "config": orders_config()}
    )
    assert response.status_code == 200, response.text
    chat = await open_chat(sessionmaker, now=NOW, store_id=uuid.UUID(store["id"]), customer_name="Ana")
    for text in ("hola", "2 x 2", "1", "pedir", "envio", "Corrientes 1234", "si"):
        reply = await chat.send(text)
    assert reply.replies[0].startswith("¡Pedido #1 confirmado! Total: $17.800.")

    response = await client.get(f"/v1/stores/{store['id']}/orders")
    assert response.status_code == 200
    [order] = response.json()["items"]
    assert order["number"] == 1 and order["total_cents"] == 1780000
    assert order["chat_jid"] == chat.chat_jid and order["customer_name"] == "Ana"
    assert order["fulfilment"] == "delivery" and order["address"] == "Corrientes 1234"
    assert [line["item"] for line in order["lines"]] == ["Fugazzeta", "Muzzarella", "Envío"]
