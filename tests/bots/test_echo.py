from __future__ import annotations

from datetime import UTC, datetime

from app.bots.configs import CONFIG_MODELS
from app.kit.db import AsyncSessionMaker
from tests.bots.helpers import open_chat
from workers.bots.registry import BOTS

NOW = datetime(2031, 3, 3, 13, 5, tzinfo=UTC)


def test_every_bot_reads_the_config_model_the_api_validates() -> None:
    assert set(BOTS) == set(CONFIG_MODELS)
    for kind, bot in BOTS.items():
        assert bot.kind == kind
        assert bot.config_model is CONFIG_MODELS[kind]


async def test_echo_repeats_text_and_keeps_state(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW)
    reply = await chat.send("Hola, ¿cómo va?")
    assert reply.replies == ["Hola, ¿cómo va?"]
    assert reply.state == {} and reply.handoff is False


async def test_echo_notes_media_without_caption(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW)
    reply = await chat.send("", type="image")
    assert reply.replies == ["Recibí tu mensaje (image), pero solo puedo repetir texto."]
    # A caption is text: it is echoed.
    assert (await chat.send("mirá esto", type="image")).replies == ["mirá esto"]


async def test_echo_in_english(sessionmaker: AsyncSessionMaker) -> None:
    chat = await open_chat(sessionmaker, now=NOW)
    chat.language = "en"
    assert (await chat.send("Hello!")).replies == ["Hello!"]
    assert (await chat.send("", type="audio")).replies == [
        "Got your message (audio), but I can only echo text."
    ]
