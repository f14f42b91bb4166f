"""The send policy and the store's rate limiter, on a clock the test moves (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from sessions.ratelimit import SendPolicy, StoreRateLimiter


class FakeClock:
    """A monotonic clock that only moves when the limiter sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the limiter must never sleep for nothing"
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, **policy: float | int | bool) -> StoreRateLimiter:
    return StoreRateLimiter(SendPolicy.model_validate(policy), clock=clock, sleep=clock.sleep)


async def test_a_burst_up_to_the_store_rate_goes_at_once_then_sends_are_spaced() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_store_per_second=5, per_chat_per_minute=1000)
    for n in range(5):
        await limit.wait(f"chat-{n}")
    assert clock.sleeps == []  # the bucket starts full
    started = clock.now
    for n in range(5, 15):
        await limit.wait(f"chat-{n}")
    # Ten more sends at 5 a second: two seconds, each send 0.2 s after the one before.
    assert clock.now - started == pytest.approx(2.0)
    assert all(s == pytest.approx(0.2) for s in clock.sleeps)


async def test_the_bucket_refills_while_idle_but_never_beyond_one_second_of_sends() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_store_per_second=4, per_chat_per_minute=1000)
    for n in range(4):
        await limit.wait(f"c{n}")
    clock.now += 3600  # an hour idle refills four tokens, not 14,400
    for n in range(4):
        await limit.wait(f"d{n}")
    assert clock.sleeps == []
    await limit.wait("e")
    assert clock.sleeps == [pytest.approx(0.25)]


async def test_one_chat_is_capped_per_minute_while_other_chats_go_on() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_store_per_second=1000, per_chat_per_minute=3)
    started = clock.now
    for _ in range(3):
        await limit.wait("busy")
    await limit.wait("other")
    assert clock.now - started < 0.01  # only the store's bucket spacing (1 ms a send at most)
    await limit.wait("busy")  # the fourth message to one chat in a minute waits for the minute to pass
    assert clock.now - started == pytest.approx(60, abs=0.01)


async def test_concurrent_waiters_share_the_store_rate() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_store_per_second=10, per_chat_per_minute=1000)
    started = clock.now
    await asyncio.gather(*(limit.wait(f"c{n}") for n in range(30)))
    # 10 at once, then 20 more at 10 a second: no waiter skipped the queue.
    assert clock.now - started == pytest.approx(2.0)


async def test_windows_of_chats_idle_for_a_minute_are_forgotten() -> None:
    clock = FakeClock()
    limit = limiter(clock, per_store_per_second=1_000_000, per_chat_per_minute=10)
    for n in range(1000):
        await limit.wait(f"c{n}")
    assert limit.chats_tracked() == 1000
    clock.now += 61
    await limit.wait("later")
    assert limit.chats_tracked() == 1  # only the chat that just sent


def test_typing_time_follows_the_text_within_its_bounds() -> None:
    policy = SendPolicy(typing_ms_per_char=40, typing_min_ms=400, typing_max_ms=3000)
    assert policy.typing_seconds("hola") == pytest.approx(0.4)  # 160 ms of typing is raised to the minimum
    assert policy.typing_seconds("x" * 50) == pytest.approx(2.0)
    assert policy.typing_seconds("x" * 500) == pytest.approx(3.0)
    assert SendPolicy(typing=False).typing_seconds("x" * 50) == 0.0


def test_jitter_stays_within_its_bound() -> None:
    policy = SendPolicy(jitter_ms=300)
    samples = [policy.jitter_seconds() for _ in range(500)]
    assert all(0 <= s <= 0.3 for s in samples)
    assert max(samples) > 0.15  # really random, not a constant
    assert SendPolicy(jitter_ms=0).jitter_seconds() == 0.0


def test_store_settings_override_the_defaults_and_bad_values_fall_back() -> None:
    policy = SendPolicy.from_store_settings({"sending": {"typing": False, "per_store_per_second": 2}})
    assert (policy.typing, policy.per_store_per_second, policy.jitter_ms) == (False, 2, 300)
    assert SendPolicy.from_store_settings({"sending": {"per_store_per_second": -1}}) == SendPolicy()
    assert SendPolicy.from_store_settings(None) == SendPolicy()
