"""The Clock port's contract: FakeClock (tests) and SystemClock (the process).

Both give a monotonic time that never goes back, a timezone-aware UTC wall
clock, and a ``sleep`` that wakes once that much of the clock's time passed.
Only how time passes differs: the fake moves when told, the system one moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC

import pytest

from adapters.memory import FakeClock
from adapters.system_clock import SystemClock
from domain.ports import Clock

Elapse = Callable[[float], Awaitable[None]]
STEP = 0.05


async def _real_time(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.fixture(params=["fake", "system"])
def clock(request: pytest.FixtureRequest) -> tuple[Clock, Elapse]:
    if request.param == "fake":
        fake = FakeClock()
        return fake, fake.advance
    return SystemClock(), _real_time


async def test_monotonic_time_never_goes_back_and_moves_with_sleep(
    clock: tuple[Clock, Elapse],
) -> None:
    subject, elapse = clock
    start = subject.monotonic()
    sleeper = asyncio.create_task(subject.sleep(STEP))

    await elapse(STEP * 2)

    assert sleeper.done()
    assert subject.monotonic() - start >= STEP


async def test_a_sleep_does_not_wake_before_its_time(clock: tuple[Clock, Elapse]) -> None:
    subject, elapse = clock
    sleeper = asyncio.create_task(subject.sleep(60))

    await elapse(STEP)

    assert not sleeper.done()
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)


async def test_now_is_timezone_aware_utc_and_follows_monotonic_time(
    clock: tuple[Clock, Elapse],
) -> None:
    subject, elapse = clock
    before = subject.now()
    await elapse(STEP)
    after = subject.now()

    assert before.tzinfo is not None and before.utcoffset() == UTC.utcoffset(None)
    assert (after - before).total_seconds() >= STEP * 0.9


@pytest.mark.parametrize("seconds", [0.0, -1.0])
async def test_a_sleep_of_nothing_returns_at_once(
    clock: tuple[Clock, Elapse], seconds: float
) -> None:
    subject, _ = clock
    async with asyncio.timeout(1):
        await subject.sleep(seconds)
