"""How fast a store may send: anti-ban pacing per store and per chat, configurable per store.

WhatsApp bans numbers that behave like bots: bursts, instant replies, many messages to one person. The
defaults follow the usual advice (typing presence before a reply, a human-ish delay with jitter, a cap per
chat per minute, a modest rate per number); a store can loosen them in `stores.settings["sending"]`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

from pydantic import BaseModel, Field, ValidationError


class SendPolicy(BaseModel):
    typing: bool = Field(True, description="Show 'typing…' before each reply.")
    typing_ms_per_char: int = Field(40, ge=0, description="Typing time per character of the reply.")
    typing_min_ms: int = Field(400, ge=0)
    typing_max_ms: int = Field(3000, ge=0)
    jitter_ms: int = Field(300, ge=0, description="Random extra delay, 0..jitter_ms, before each send.")
    per_chat_per_minute: int = Field(20, ge=1, description="At most this many messages to one chat a minute.")
    per_store_per_second: float = Field(
        5, gt=0, description="Sustained sends per second for the whole number."
    )

    @classmethod
    def from_store_settings(cls, settings: dict[str, Any] | None) -> SendPolicy:
        try:
            return cls.model_validate((settings or {}).get("sending") or {})
        except ValidationError:
            return cls()  # the API validates on write; an old bad value must not stop sending

    def typing_seconds(self, text: str) -> float:
        if not self.typing:
            return 0.0
        ms = min(self.typing_max_ms, max(self.typing_min_ms, self.typing_ms_per_char * len(text)))
        return ms / 1000

    def jitter_seconds(self) -> float:
        return random.uniform(0, self.jitter_ms / 1000) if self.jitter_ms else 0.0


class StoreRateLimiter:
    """A token bucket for the store and a one-minute window per chat; `wait` sleeps until both allow."""

    def __init__(self, policy: SendPolicy) -> None:
        self.policy = policy
        self._tokens = policy.per_store_per_second
        self._updated = time.monotonic()
        self._chats: dict[str, deque[float]] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat_jid: str) -> None:
        window = self._chats.setdefault(chat_jid, deque())
        while True:
            now = time.monotonic()
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= self.policy.per_chat_per_minute:
                await asyncio.sleep(60 - (now - window[0]))
                continue
            break
        async with self._lock:
            rate = self.policy.per_store_per_second
            while True:
                now = time.monotonic()
                self._tokens = min(rate, self._tokens + (now - self._updated) * rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    break
                await asyncio.sleep((1 - self._tokens) / rate)
        window.append(time.monotonic())
