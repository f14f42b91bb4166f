"""Which bot answers for a store: `bot_kind` -> the bot, and its stored `bot_config` -> its config model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.bots.configs import Language
from workers.bots.base import Bot
from workers.bots.booking import BookingBot
from workers.bots.echo import EchoBot
from workers.bots.menu import MenuBot
from workers.bots.orders import OrdersBot
from workers.bots.webhook import WebhookBot

BOTS: dict[str, Bot] = {
    bot.kind: bot for bot in (EchoBot(), MenuBot(), BookingBot(), OrdersBot(), WebhookBot())
}


class UnknownBotKind(LookupError):
    pass


def get_bot(kind: str) -> Bot:
    try:
        return BOTS[kind]
    except KeyError:
        raise UnknownBotKind(f"no bot of kind {kind!r}; known: {', '.join(sorted(BOTS))}") from None


def load_bot(kind: str, raw_config: dict[str, Any]) -> tuple[Bot, BaseModel]:
    """The store's bot and its parsed config (raises pydantic's ValidationError for a config the API would
    have refused: the stored one is validated on write, so that means it was written around the API)."""
    bot = get_bot(kind)
    return bot, bot.config_model.model_validate(raw_config)


def language_of(config: BaseModel) -> Language:
    """The language the store chose for its bot: what the worker puts in `BotContext.language`."""
    language: Language = getattr(config, "language", "es")
    return language
