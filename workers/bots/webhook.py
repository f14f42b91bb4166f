"""The webhook bot: the store's own backend answers each inbound message, in any language.

A synchronous POST, signed like webhooks (Standard Webhooks headers with the bot's `whsec_` secret; the
`webhook-id` is derived from the inbound message, so a retried message carries the same id), of
`{"type": "bot.message", "timestamp", "data": {"store_id", "store_name", "message", "conversation"}}`,
answered with `{"replies": [{"text": ...}], "state": {...}?, "handoff": bool?}`. The call goes through the
webhooks' sender: the SSRF guard after DNS resolution, pinned address, no redirects, a bounded read.

Failures follow the pipeline's rules (workers/receiver.py): a timeout, a connection error, a 408/429/5xx or an
answer that is not the expected JSON raise, so the message is retried in its lane and then dead-lettered; a
refused URL or another 4xx cannot get better by retrying and is dead-lettered at once. Per-chat order holds:
the lane waits for the answer.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.bots.configs import WebhookBotConfig
from app.config import Settings
from app.kit.lanes import Unprocessable
from app.webhooks.signing import SecretBox
from workers.bots.base import Bot, BotContext, BotMessage, BotReply, BotTools
from workers.webhooks.sender import Sender

MAX_REPLIES = 10


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = Field(min_length=1, max_length=4096)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    replies: list[_Reply] = Field(default_factory=list, max_length=MAX_REPLIES)
    state: dict[str, Any] | None = None
    handoff: bool = False


class WebhookBotFailed(RuntimeError):
    """The store's backend did not answer usefully this time (retried by the lane)."""


class WebhookBot(Bot):
    kind: ClassVar[str] = "webhook"
    config_model: ClassVar[type[BaseModel]] = WebhookBotConfig
    # Set by the worker at start-up (`configure`): the process's settings decide the guard and the key.
    _sender: ClassVar[Sender | None] = None
    _box: ClassVar[SecretBox | None] = None

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls._sender = Sender(
            allow_private=settings.webhooks_allow_private_networks,
            connect_timeout=settings.webhooks_connect_timeout_seconds,
            timeout=settings.webhooks_timeout_seconds,
            per_receiver=settings.webhooks_max_per_receiver,
        )
        cls._box = SecretBox(settings.secret_key) if settings.secret_key else None

    async def handle(
        self,
        context: BotContext,
        config: BaseModel,
        state: dict[str, Any],
        message: BotMessage,
        tools: BotTools,
    ) -> BotReply:
        assert isinstance(config, WebhookBotConfig)
        if self._sender is None or self._box is None or not config.secret_encrypted:
            raise WebhookBotFailed("the webhook bot is not configured in this process")
        body = {
            "type": "bot.message",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {
                "store_id": str(context.store_id),
                "store_name": context.store_name,
                "message": {
                    "id": str(message.id) if message.id else None,
                    "text": message.text,
                    "type": message.type,
                    "received_at": message.received_at.isoformat(),
                },
                "conversation": {
                    "chat_jid": message.chat_jid,
                    "customer_name": message.customer_name,
                    "state": state,
                },
            },
        }
        seed = str(message.id) if message.id else f"{message.chat_jid}:{message.received_at.isoformat()}"
        attempt = await self._sender.post(
            config.url,
            secrets=[self._box.decrypt(config.secret_encrypted)],
            msg_id="msg_" + uuid.uuid5(context.store_id, seed).hex,
            body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
            timeout=config.timeout_ms / 1000,
        )
        if not attempt.ok:
            if attempt.retryable:
                raise WebhookBotFailed(attempt.error or "the store's backend failed")
            raise Unprocessable(f"the store's backend refused the message: {attempt.error}")
        try:
            answer = _Answer.model_validate_json(attempt.body or b"{}")
        except ValidationError as exc:
            raise WebhookBotFailed(f"the store's backend answered with unexpected JSON: {exc}") from exc
        return BotReply(
            replies=[reply.text for reply in answer.replies],
            state=state if answer.state is None else answer.state,
            handoff=answer.handoff,
        )
