"""Process-level behaviours of the Go controller manager that wrap the controllers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from application.manager import Runnable

#: k8s.io/cloud-provider's ControllerStartJitter.
START_JITTER = 1.0


class _DelayedStart:
    """A runnable that starts ``delay`` seconds after the others were started."""

    def __init__(self, inner: Runnable, delay: float) -> None:
        self._inner = inner
        self.delay = delay
        self.name = inner.name

    async def run(self) -> None:
        await asyncio.sleep(self.delay)
        await self._inner.run()

    def __getattr__(self, item: str) -> object:
        return getattr(self._inner, item)


def staggered(
    runnables: Sequence[Runnable],
    interval: float,
    *,
    jitter: Callable[[], float] = random.random,
) -> list[Runnable]:
    """``--controller-start-interval``: Go starts controllers one by one and sleeps
    ``wait.Jitter(interval, 1.0)`` (``interval x (1 + rand)``) after each; so the
    k-th starts after the sum of k such pauses. 0 (the default) starts all at once."""
    if interval <= 0:
        return list(runnables)
    out: list[Runnable] = []
    delay = 0.0
    for runnable in runnables:
        out.append(_DelayedStart(runnable, delay) if delay else runnable)
        delay += interval * (1 + START_JITTER * jitter())
    return out
