"""The echo bot: answers with the customer's own text. Useful to check that a number is wired end to end."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from app.bots.configs import EchoConfig
from workers.bots.base import Bot, BotContext, BotMessage, BotReply, BotTools

_NO_TEXT = {
    "es": "Recibí tu mensaje ({type}), pero solo puedo repetir texto.",
    "en": "Got your message ({type}), but I can only echo text.",
}


class EchoBot(Bot):
    kind: ClassVar[str] = "echo"
    config_model: ClassVar[type[BaseModel]] = EchoConfig

    async def handle(
        self,
        context: BotContext,
        config: BaseModel,
        state: dict[str, Any],
        message: BotMessage,
        tools: BotTools,
    ) -> BotReply:
        if message.text.strip():
            return BotReply(replies=[message.text], state=state)
        return BotReply(replies=[_NO_TEXT[context.language].format(type=message.type)], state=state)
