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
from collections.abc import Awaitable, Callable
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
    """A token bucket for the store and a one-minute window per chat; `wait` sleeps until both allow.

    `clock` and `sleep` are the monotonic clock and the sleep to use (tests pass a clock they advance)."""

    def __init__(
        self,
        policy: SendPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._tokens = policy.per_store_per_second
        self._updated = clock()
        self._pruned = self._updated
        self._chats: dict[str, deque[float]] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat_jid: str) -> bool:
        """Sleep until the caps allow one more send to the chat; True when that meant waiting at all."""
        waited = False
        window = self._chats.setdefault(chat_jid, deque())
        while True:
            now = self._clock()
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= self.policy.per_chat_per_minute:
                waited = True
                await self._sleep(60 - (now - window[0]))
                continue
            break
        async with self._lock:
            rate = self.policy.per_store_per_second
            while True:
                now = self._clock()
                self._tokens = min(rate, self._tokens + (now - self._updated) * rate)
                self._updated = now
                # A whisker below 1 is a token: sleeping exactly the deficit can land there by rounding.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    break
                waited = True
                await self._sleep((1 - self._tokens) / rate)
        now = self._clock()
        window.append(now)
        if now - self._pruned >= 60:
            self._prune(now)
        return waited

    def chats_tracked(self) -> int:
        return len(self._chats)

    def _prune(self, now: float) -> None:
        """Drop the windows of chats that sent nothing for a minute (an empty window allows as much): a store
        that talked to 10,000 chats must not keep 10,000 windows for good."""
        self._pruned = now
        for chat in [c for c, w in self._chats.items() if not w or now - w[-1] >= 60]:
            del self._chats[chat]
