"""Work queue, rate limiter, periodic loops and the leader gate on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory import FakeClock, InMemoryLeaderElector, InMemoryMetrics
from application.controllers import QueueSettings, new_queue, run_workers
from application.manager import LeaderGate, LeadershipLost
from application.periodic import run_every
from application.rate_limit import ControllerRateLimiter, ItemExponentialBackoff, TokenBucket


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        pytest.param(1, 0.005, id="first-retry-5ms"),
        pytest.param(2, 0.010, id="doubles"),
        pytest.param(11, 0.005 * 2**10, id="eleventh"),
        pytest.param(19, 1000.0, id="capped-at-1000s"),
        pytest.param(500, 1000.0, id="stays-capped-without-overflow"),
    ],
)
def test_item_backoff(failures: int, delay: float) -> None:
    backoff = ItemExponentialBackoff()
    got = [backoff.when("node") for _ in range(failures)][-1]
    assert got == pytest.approx(delay)


def test_item_backoff_is_per_item_and_forget_resets() -> None:
    backoff = ItemExponentialBackoff()
    backoff.when("a")
    backoff.when("a")
    assert backoff.when("b") == pytest.approx(0.005)
    backoff.forget("a")
    assert backoff.when("a") == pytest.approx(0.005)


def test_token_bucket_burst_then_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock=clock, qps=10, burst=100)
    assert all(bucket.reserve() == 0 for _ in range(100))
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)


def test_rate_limiter_is_the_max_of_both() -> None:
    clock = FakeClock()
    limiter = ControllerRateLimiter(clock=clock, qps=10, burst=1)
    assert limiter.when("a") == pytest.approx(0.005)  # token available, item backoff wins
    assert limiter.when("b") == pytest.approx(0.1)  # bucket empty, bucket wins


def _queue(clock: FakeClock, metrics: InMemoryMetrics | None = None):  # type: ignore[no-untyped-def]
    return new_queue("test", clock, metrics or InMemoryMetrics(), QueueSettings())


async def test_queue_deduplicates_queued_keys() -> None:
    q = _queue(FakeClock())
    for key in ["a", "b", "a", "a"]:
        await q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_queue_key_readded_while_processing_runs_again_after_done() -> None:
    q = _queue(FakeClock())
    await q.add("a")
    key = await q.get()
    await q.add("a")
    assert len(q) == 0  # not handed to a second worker while processing
    await q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"


async def test_queue_reports_waits_and_the_work_in_progress_as_client_go_does() -> None:
    clock, metrics = FakeClock(), InMemoryMetrics()
    q = _queue(clock, metrics)
    probe = metrics.in_progress["test"]
    assert probe() == (0.0, 0.0)
    await q.add("a")
    await q.add("b")
    await clock.advance(2.0)
    assert await q.get() == "a"
    await clock.advance(1.0)
    assert await q.get() == "b"
    assert metrics.waits == [("test", 2.0), ("test", 3.0)]  # added -> taken
    await clock.advance(4.0)
    assert probe() == (5.0 + 4.0, 5.0)  # a for 5 s, b for 4 s: summed, and the longest
    await q.add("a")  # again while in work: its wait starts now
    await q.done("a")
    assert metrics.durations == [("test", 5.0)]  # taken -> done, timed by the queue
    assert probe() == (4.0, 4.0)
    await clock.advance(1.0)
    assert await q.get() == "a"
    assert metrics.waits[-1] == ("test", 1.0)


async def test_queue_add_after_waits_for_the_clock() -> None:
    clock = FakeClock()
    q = _queue(clock)
    await q.add_after("a", 10)
    await q.add_after("b", 5)
    await clock.advance(4.9)
    assert len(q) == 0
    await clock.advance(0.2)
    assert len(q) == 1
    assert await q.get() == "b"
    await clock.advance(5)
    assert await q.get() == "a"
    await q.shutdown()


async def test_queue_earlier_add_after_wins() -> None:
    clock = FakeClock()
    q = _queue(clock)
    await q.add_after("a", 100)
    await q.add_after("a", 1)
    await clock.advance(1)
    assert len(q) == 1
    await q.get()
    await clock.advance(200)
    assert len(q) == 0
    await q.shutdown()


async def test_workers_back_off_exponentially_then_forget_on_success() -> None:
    clock = FakeClock()
    metrics = InMemoryMetrics()
    q = _queue(clock, metrics)
    attempts: list[float] = []

    async def handle(key: str) -> None:
        attempts.append(clock.monotonic())
        if len(attempts) < 4:
            from domain.errors import InventoryError

            raise InventoryError("XO down")

    task = asyncio.create_task(run_workers(q, handle, workers=2))
    await q.add("node")
    for _ in range(10):
        await clock.advance(0.005)
    assert [round(t, 3) for t in attempts] == [0.0, 0.005, 0.015, 0.035]
    assert q.retries("node") == 0  # forgotten after success
    assert metrics.counters[("queue_retried", "test")] == 3
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_workers_never_process_one_key_concurrently() -> None:
    clock = FakeClock()
    metrics = InMemoryMetrics()
    q = _queue(clock, metrics)
    running: set[str] = set()
    overlaps = 0
    release = asyncio.Event()

    async def handle(key: str) -> None:
        nonlocal overlaps
        overlaps += key in running
        running.add(key)
        await release.wait()
        running.discard(key)

    task = asyncio.create_task(run_workers(q, handle, workers=4))
    await q.add("n")
    await clock.settle()
    await q.add("n")
    await clock.settle()
    release.set()
    await clock.settle()
    assert overlaps == 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_periodic_runs_now_then_every_period_and_survives_errors() -> None:
    clock = FakeClock()
    calls: list[float] = []

    async def work() -> None:
        calls.append(clock.monotonic())
        if len(calls) == 2:
            raise RuntimeError("one bad pass")

    task = asyncio.create_task(run_every(clock, 300, work, name="t"))
    await clock.advance(900)
    assert calls == [0, 300, 600, 900]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped.set()


async def test_leader_gate_runs_only_while_leading_and_stops_cleanly() -> None:
    elector = InMemoryLeaderElector()
    metrics = InMemoryMetrics()
    gate = LeaderGate(elector=elector, metrics=metrics)
    ctrl = Recorder("c")
    task = asyncio.create_task(gate.run([ctrl]))
    await asyncio.sleep(0)
    assert not ctrl.started.is_set()
    assert not gate.leading
    elector.grant()
    await asyncio.wait_for(ctrl.started.wait(), 1)
    assert gate.leading
    assert metrics.is_leader
    assert metrics.controllers == {"c"}
    elector.revoke()
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(task, 1)
    assert ctrl.stopped.is_set()
    assert not metrics.is_leader
    assert metrics.controllers == set()


async def test_leader_gate_cancelled_releases_the_lease() -> None:
    elector = InMemoryLeaderElector(leading=True)
    gate = LeaderGate(elector=elector, metrics=InMemoryMetrics())
    ctrl = Recorder("c")
    task = asyncio.create_task(gate.run([ctrl]))
    await asyncio.wait_for(ctrl.started.wait(), 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert ctrl.stopped.is_set()
    assert elector.released


async def test_leader_gate_surfaces_a_crashed_controller() -> None:
    class Crashing:
        name = "crash"

        async def run(self) -> None:
            raise RuntimeError("boom")

    gate = LeaderGate(elector=InMemoryLeaderElector(leading=True), metrics=InMemoryMetrics())
    other = Recorder("other")
    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(gate.run([Crashing(), other]), 1)
    assert other.stopped.is_set()
