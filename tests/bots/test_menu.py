from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from app.kit.db import AsyncSessionMaker
from app.models import Store
from tests.bots.helpers import joined, open_chat

NOW = datetime(2031, 3, 3, 13, 5, tzinfo=UTC)


def menu_config(language: str = "es") -> dict[str, Any]:
    return {
        "language": language,
        "greeting": "¡Hola! Somos Rulos, peluquería.",
        "options": [
            {"title": "Horarios", "keywords": ["horario", "abren"], "answer": "Lunes a sábado de 9 a 20."},
            {
                "title": "Precios",
                "keywords": ["precio", "cuanto sale"],
                "options": [
                    {"title": "Corte", "answer": "Corte: $8.000"},
                    {"title": "Color", "keywords": ["tintura"], "answer": "Color: $15.000"},
                ],
            },
            {"title": "Hablar con alguien", "handoff": True, "answer": "Ya te atiende alguien del equipo."},
        ],
    }


async def test_spanish_conversation_through_the_tree(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="menu", config=menu_config())

    first = await chat.send("hola")
    assert first.replies[0] == "¡Hola! Somos Rulos, peluquería."
    assert "1. Horarios\n2. Precios\n3. Hablar con alguien" in first.replies[1]
    assert "No entendí" not in joined(first)  # a greeting is not a mistake
    assert chat.state == {"bot": "menu", "path": []}

    reply = await chat.send("2")
    assert reply.replies == ["*Precios*\n1. Corte\n2. Color\n0. Volver"]
    assert chat.state["path"] == [1]

    reply = await chat.send("2")  # numbers are read in the current submenu
    assert reply.replies[0] == "Color: $15.000"
    assert "menu" in reply.replies[1]
    assert chat.state["path"] == [1]

    reply = await chat.send("volver")
    assert "1. Horarios" in joined(reply) and chat.state["path"] == []

    reply = await chat.send("¿A qué hora abren?")  # a keyword, inside a sentence
    assert reply.replies[0] == "Lunes a sábado de 9 a 20."

    reply = await chat.send("Tintura")  # a keyword of a submenu's option, from the top
    assert reply.replies[0] == "Color: $15.000" and chat.state["path"] == [1]

    reply = await chat.send("menu")
    assert chat.state["path"] == [] and "2. Precios" in joined(reply)


async def test_not_understood_repeats_the_options(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="menu", config=menu_config())
    await chat.send("hola")
    await chat.send("precios")
    for text in ("qwerty", "7", ""):
        reply = await chat.send(text)
        assert reply.replies[0] == "No entendí tu mensaje."
        assert reply.replies[1] == "*Precios*\n1. Corte\n2. Color\n0. Volver"
    assert (await chat.send("0")).replies[0].startswith("Elegí una opción")
    assert (await chat.send("0")).replies[0].startswith("Elegí una opción")  # at the top, back stays there


async def test_handoff_by_option_and_by_keyword(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="menu", config=menu_config())
    await chat.send("hola")
    reply = await chat.send("3")
    assert reply.handoff is True and reply.replies == ["Ya te atiende alguien del equipo."]

    reply = await chat.send("quiero hablar con una persona")
    assert reply.handoff is False  # only the bare command hands off; this one is not understood
    reply = await chat.send("Humano")
    assert reply.handoff is True
    assert reply.replies == ["Te paso con una persona del equipo; en breve te responde por acá."]
    assert (await chat.send("1")).handoff is False


async def test_english_store(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="menu", config=menu_config("en"))
    first = await chat.send("hi")
    assert first.replies[1].startswith("Choose an option (reply with its number):")
    assert "Type *human* to talk to a person." in first.replies[1]
    reply = await chat.send("2")
    assert reply.replies == ["*Precios*\n1. Corte\n2. Color\n0. Back"]
    assert (await chat.send("nope")).replies[0] == "Sorry, I didn't get that."
    assert (await chat.send("back")).replies[0].startswith("Choose an option")
    reply = await chat.send("agent")
    assert reply.handoff is True and reply.replies[0].startswith("I'm passing you to a person")


async def test_a_changed_menu_sends_a_stale_path_to_the_top(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW, kind="menu", config=menu_config())
    await chat.send("hola")
    await chat.send("2")
    assert chat.state["path"] == [1]
    config = menu_config()
    config["options"] = config["options"][:1]  # "Precios" is gone
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Store).where(Store.id == chat.store_id).values(bot_config=config))
    reply = await chat.send("9")
    assert reply.replies == ["No entendí tu mensaje.", reply.replies[1]]
    assert reply.replies[1].startswith("Elegí una opción") and chat.state["path"] == []
