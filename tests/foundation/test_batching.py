"""GroupCommit: batches under load, one flush per item alone, order, failures."""

from __future__ import annotations

import asyncio

from app.kit.batching import GroupCommit


class Recorder:
    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.in_flight = 0
        self.most_in_flight = 0

    async def flush(self, items: list[int]) -> list[int]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail_on is not None and self.fail_on in items:
                raise ValueError(f"item {self.fail_on}")
            self.batches.append(items)
            return [item * 10 for item in items]
        finally:
            self.in_flight -= 1


async def test_items_submitted_together_share_a_flush_and_each_gets_its_result() -> None:
    recorder = Recorder()
    commits = GroupCommit(recorder.flush)
    results = await asyncio.gather(*(commits.submit(n) for n in range(50)))
    assert results == [n * 10 for n in range(50)]
    assert recorder.batches == [list(range(50))]


async def test_one_caller_after_another_is_never_left_waiting() -> None:
    # Each submit comes right after the previous result, when the flusher has just finished: the item must
    # start a flusher of its own.
    recorder = Recorder()
    commits = GroupCommit(recorder.flush, linger=0)

    async def one_after_another() -> list[int]:
        # Awaited directly, in one task: wrapping each submit in a task of its own would hide the gap.
        return [await commits.submit(n) for n in range(20)]

    assert await asyncio.wait_for(one_after_another(), timeout=5) == [n * 10 for n in range(20)]
    assert recorder.batches == [[n] for n in range(20)]


async def test_items_arriving_during_a_flush_go_in_the_next_and_in_order() -> None:
    recorder = Recorder(delay=0.05)
    commits = GroupCommit(recorder.flush, max_batch=3)
    first = commits.submit_nowait(0)
    await asyncio.sleep(0.01)  # the first flush is in flight
    rest = [commits.submit_nowait(n) for n in range(1, 8)]
    assert await asyncio.gather(first, *rest) == [n * 10 for n in range(8)]
    assert recorder.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert recorder.most_in_flight == 1


async def test_a_failed_flush_fails_its_items_and_the_next_flush_goes_on() -> None:
    recorder = Recorder(delay=0.02, fail_on=1)
    commits = GroupCommit(recorder.flush, max_batch=2)
    futures = [commits.submit_nowait(n) for n in range(4)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert [type(o) for o in outcomes[:2]] == [ValueError, ValueError]
    assert outcomes[2:] == [20, 30]


async def test_with_fail_waiting_a_failed_flush_fails_everything_behind_it() -> None:
    recorder = Recorder(delay=0.02, fail_on=1)
    commits = GroupCommit(recorder.flush, max_batch=2, fail_waiting=True)
    futures = [commits.submit_nowait(n) for n in range(4)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert recorder.batches == []
    assert await commits.submit(5) == 50  # and the next item is flushed as usual
