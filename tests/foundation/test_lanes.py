"""The keyed lane executor (app/kit/lanes.py): order per key, bounds, runs, retries, stores dropped or drained."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict

from app.kit.lanes import Key, Lanes, Retry, Unprocessable

STORE, OTHER = uuid.uuid4(), uuid.uuid4()


class Transient(Exception):
    pass


def fast_retry(attempts: int = 3) -> Retry:
    return Retry(
        attempts,
        delays=(0.0,),
        transient=lambda exc: isinstance(exc, Transient),
        transient_delay=0.001,
        transient_delay_max=0.001,
    )


class Recorder:
    """A handler, `done` and `dead` that record what they were given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Key, list[str]]] = []
        self.done: list[tuple[Key, list[str]]] = []
        self.dead: list[tuple[Key, str, BaseException]] = []

    async def on_done(self, key: Key, run: list[str]) -> None:
        self.done.append((key, list(run)))

    async def on_dead(self, key: Key, item: str, error: BaseException) -> None:
        self.dead.append((key, item, error))

    def done_items(self, key: Key | None = None) -> list[str]:
        return [item for k, run in self.done for item in run if key is None or k == key]


async def settle(lanes: Lanes[str], timeout: float = 5) -> None:
    assert await lanes.wait_idle(timeout), "the lanes did not finish"


async def test_each_keys_items_run_in_order_and_keys_interleave() -> None:
    recorder = Recorder()
    active: set[Key] = set()
    overlapped = asyncio.Event()

    async def handle(key: Key, run: list[str]) -> None:
        assert key not in active, "two runs of one key at once"
        active.add(key)
        if len(active) > 1:
            overlapped.set()
        await asyncio.sleep(random.uniform(0, 0.003))
        active.discard(key)
        recorder.calls.append((key, run))

    lanes: Lanes[str] = Lanes(handle, concurrency=8, done=recorder.on_done)
    keys = [(STORE, f"chat-{c}") for c in range(10)]
    for n in range(20):
        for key in keys:
            lanes.put(key, f"{key[1]}:{n}")
    await settle(lanes)
    for key in keys:
        assert recorder.done_items(key) == [f"{key[1]}:{n}" for n in range(20)]
    assert overlapped.is_set()  # different keys did run at the same time


async def test_no_more_keys_run_at_once_than_the_limit() -> None:
    running = 0
    peak = 0
    release = asyncio.Event()
    three_running = asyncio.Event()

    async def handle(_key: Key, _run: list[str]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            three_running.set()
        await release.wait()
        running -= 1

    lanes: Lanes[str] = Lanes(handle, concurrency=3)
    for c in range(10):
        lanes.put((STORE, f"chat-{c}"), "x")
    await asyncio.wait_for(three_running.wait(), 5)
    for _ in range(20):  # every other lane gets its chance to (wrongly) start
        await asyncio.sleep(0)
    assert running == 3
    release.set()
    await settle(lanes)
    assert peak == 3


async def test_consecutive_items_go_as_one_run_and_a_failing_run_is_split() -> None:
    recorder = Recorder()

    async def handle(key: Key, run: list[str]) -> None:
        recorder.calls.append((key, list(run)))
        if "bad" in run:
            raise RuntimeError("bot crashed on bad")

    lanes: Lanes[str] = Lanes(
        handle, run_max=10, retry=fast_retry(attempts=2), done=recorder.on_done, dead=recorder.on_dead
    )
    key = (STORE, "chat")
    blocker = asyncio.Event()
    # Hold the lane on a first run so that the next four items are queued together behind it.
    lanes.batchable = lambda item: item != "first"

    async def first_waits(key: Key, run: list[str]) -> None:
        if run == ["first"]:
            await blocker.wait()
            return
        await handle(key, run)

    lanes.handle = first_waits
    for item in ["first", "a", "bad", "b", "c"]:
        lanes.put(key, item)
    await asyncio.sleep(0)
    blocker.set()
    await settle(lanes)
    assert recorder.calls == [
        (key, ["a", "bad", "b", "c"]),  # one run...
        (key, ["a"]),  # ...failed: one at a time, so that only the failing item is retried
        (key, ["bad"]),
        (key, ["bad"]),
        (key, ["b"]),
        (key, ["c"]),
    ]
    assert [(item, str(error)) for _, item, error in recorder.dead] == [("bad", "bot crashed on bad")]
    # Everything is done (acknowledged) once, in order; the dead letter too, after its dead-lettering.
    assert recorder.done_items() == ["first", "a", "bad", "b", "c"]


async def test_a_run_never_exceeds_run_max() -> None:
    recorder = Recorder()
    gate = asyncio.Event()

    async def handle(key: Key, run: list[str]) -> None:
        if run == ["0"]:
            await gate.wait()
        recorder.calls.append((key, list(run)))

    lanes: Lanes[str] = Lanes(handle, run_max=4, retry=fast_retry(), done=recorder.on_done)
    key = (STORE, "chat")
    lanes.put(key, "0")
    await asyncio.sleep(0)  # the first run starts alone
    for n in range(1, 10):
        lanes.put(key, str(n))
    gate.set()
    await settle(lanes)
    assert [run for _, run in recorder.calls] == [["0"], ["1", "2", "3", "4"], ["5", "6", "7", "8"], ["9"]]


async def test_reading_waits_while_a_lane_is_full_and_resumes_when_it_drains() -> None:
    release = asyncio.Event()

    async def handle(_key: Key, _run: list[str]) -> None:
        await release.wait()

    lanes: Lanes[str] = Lanes(handle, buffer=3)
    for n in range(3):
        lanes.put((STORE, "slow"), str(n))
    lanes.put((STORE, "other"), "x")
    room = asyncio.create_task(lanes.room())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not room.done()  # a lane holds `buffer` items: reading pauses
    release.set()
    await asyncio.wait_for(room, 5)  # ...and resumes once it drains below the buffer
    await settle(lanes)


async def test_a_failing_item_is_retried_then_dead_lettered_and_its_lane_goes_on() -> None:
    recorder = Recorder()

    async def handle(key: Key, run: list[str]) -> None:
        recorder.calls.append((key, list(run)))
        if run == ["poison"]:
            raise ValueError("cannot handle this")

    lanes: Lanes[str] = Lanes(
        handle, retry=fast_retry(attempts=3), done=recorder.on_done, dead=recorder.on_dead
    )
    key = (STORE, "chat")
    for item in ["one", "poison", "two"]:
        lanes.put(key, item)
    await settle(lanes)
    assert [run for _, run in recorder.calls] == [["one"], ["poison"], ["poison"], ["poison"], ["two"]]
    assert len(recorder.dead) == 1 and isinstance(recorder.dead[0][2], ValueError)
    assert recorder.done_items() == ["one", "poison", "two"]


async def test_an_unprocessable_item_is_dead_lettered_without_retries() -> None:
    recorder = Recorder()

    async def handle(key: Key, run: list[str]) -> None:
        recorder.calls.append((key, list(run)))
        raise Unprocessable("not a task message")

    lanes: Lanes[str] = Lanes(
        handle, retry=fast_retry(attempts=3), done=recorder.on_done, dead=recorder.on_dead
    )
    lanes.put((STORE, "chat"), "garbage")
    await settle(lanes)
    assert len(recorder.calls) == 1 and [item for _, item, _ in recorder.dead] == ["garbage"]


async def test_infrastructure_errors_are_retried_without_counting_attempts() -> None:
    recorder = Recorder()
    failures = defaultdict(int)

    async def handle(key: Key, run: list[str]) -> None:
        recorder.calls.append((key, list(run)))
        if failures[run[0]] < 5:  # PostgreSQL away for five tries: more than the attempts allowed
            failures[run[0]] += 1
            raise Transient("connection refused")

    lanes: Lanes[str] = Lanes(
        handle, retry=fast_retry(attempts=2), done=recorder.on_done, dead=recorder.on_dead
    )
    lanes.put((STORE, "chat"), "hola")
    await settle(lanes)
    assert len(recorder.calls) == 6
    assert recorder.dead == [] and recorder.done_items() == ["hola"]


async def test_a_store_dropped_mid_run_gets_no_further_calls_and_no_ack() -> None:
    recorder = Recorder()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handle(key: Key, run: list[str]) -> None:
        recorder.calls.append((key, list(run)))
        if run == ["a1"]:
            started.set()
            try:
                await asyncio.Event().wait()  # a long handler: the lease is lost meanwhile
            except asyncio.CancelledError:
                cancelled.set()
                raise

    lanes: Lanes[str] = Lanes(handle, retry=fast_retry(), done=recorder.on_done)
    baseline = len(asyncio.all_tasks())
    for item in ["a1", "a2", "a3"]:
        lanes.put((STORE, "chat"), item)
    lanes.put((OTHER, "chat"), "b1")
    await asyncio.wait_for(started.wait(), 5)
    lanes.drop_store(STORE)
    await asyncio.wait_for(cancelled.wait(), 5)
    await settle(lanes)
    assert [run for key, run in recorder.calls if key[0] == STORE] == [["a1"]]
    assert recorder.done_items((STORE, "chat")) == []  # nothing acknowledged: the next owner replays it
    assert recorder.done_items((OTHER, "chat")) == ["b1"]  # the other store is untouched
    assert lanes.lanes() == 0 and len(asyncio.all_tasks()) == baseline
    lanes.put((STORE, "chat"), "a4")  # taken again later: served as a new lane
    await settle(lanes)
    assert recorder.done_items((STORE, "chat")) == ["a4"]


async def test_a_drained_store_finishes_its_runs_in_flight_and_starts_none() -> None:
    recorder = Recorder()
    started = asyncio.Event()
    release = asyncio.Event()

    async def handle(key: Key, run: list[str]) -> None:
        recorder.calls.append((key, list(run)))
        if run == ["busy-1"]:
            started.set()
            await release.wait()

    lanes: Lanes[str] = Lanes(handle, concurrency=1, done=recorder.on_done)
    for item in ["busy-1", "busy-2"]:
        lanes.put((STORE, "busy"), item)
    lanes.put((STORE, "waiting"), "w1")  # queued behind the concurrency limit, not started
    await asyncio.wait_for(started.wait(), 5)
    drain = asyncio.create_task(lanes.drain_stores([STORE], timeout=5))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not drain.done()  # the send in flight is waited for
    assert not lanes.put((STORE, "busy"), "busy-3")  # nothing new is taken for a draining store
    release.set()
    assert await asyncio.wait_for(drain, 5) == 0
    assert [run for _, run in recorder.calls] == [["busy-1"]]
    assert recorder.done_items() == ["busy-1"]
    assert lanes.lanes() == 0
    lanes.drop_store(STORE)  # handed over: the store may be taken again
    assert lanes.put((STORE, "busy"), "busy-2")
    await settle(lanes)


async def test_idle_lanes_end_with_their_tasks() -> None:
    recorder = Recorder()

    async def handle(key: Key, run: list[str]) -> None:
        await asyncio.sleep(0)

    lanes: Lanes[str] = Lanes(handle, concurrency=50, done=recorder.on_done)
    baseline = len(asyncio.all_tasks())
    for c in range(5000):
        lanes.put((STORE, f"chat-{c}"), "hola")
    assert len(asyncio.all_tasks()) == baseline + 5000  # one task per lane with work...
    await settle(lanes)
    assert len(recorder.done) == 5000
    assert lanes.lanes() == 0 and len(asyncio.all_tasks()) == baseline  # ...and none once they are idle
