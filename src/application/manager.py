"""The controller manager: enabled controllers behind a leader gate, started
``--controller-start-interval`` apart."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from domain.ports import LeaderElector, Metrics

log = logging.getLogger(__name__)


class Runnable(Protocol):
    name: str

    async def run(self) -> None: ...


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
    ``wait.Jitter(interval, 1.0)`` (``interval x (1 + rand)``) after each
    (cloud-provider's ``controllermanager.go``); so the k-th starts after the sum of
    k such pauses. 0 (the default) starts all at once."""
    if interval <= 0:
        return list(runnables)
    out: list[Runnable] = []
    delay = 0.0
    for runnable in runnables:
        out.append(_DelayedStart(runnable, delay) if delay else runnable)
        delay += interval * (1 + START_JITTER * jitter())
    return out


class LeadershipLost(Exception):
    """This replica stopped leading: the process must exit (and be restarted)."""


class LeaderGate:
    """Runs ``runnables`` only while this replica leads.

    Waits for leadership, starts every runnable, and when leadership is lost
    cancels them all, waits until they have stopped, and raises
    LeadershipLost, so no controller keeps writing after another replica
    took over. Cancellation from outside (shutdown) releases the lease.
    """

    def __init__(
        self,
        *,
        elector: LeaderElector,
        metrics: Metrics,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self._elector = elector
        self._metrics = metrics
        self._on_started = on_started
        self.leading = False

    async def run(self, runnables: Sequence[Runnable]) -> None:
        log.info("waiting for leadership")
        await self._elector.acquire()
        self.leading = True
        self._metrics.leader(is_leader=True)
        log.info("leading: starting %s", ", ".join(r.name for r in runnables) or "nothing")
        tasks = [asyncio.create_task(r.run(), name=r.name) for r in runnables]
        self._metrics.controllers_running(names=[r.name for r in runnables], running=True)
        lost = asyncio.create_task(self._elector.lost(), name="leader-lost")
        if self._on_started:
            self._on_started()
        try:
            done, _ = await asyncio.wait([lost, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task is lost else task.exception()
                if error is not None:
                    raise error
            if lost in done:
                raise LeadershipLost("leader election lost")
        finally:
            for task in [lost, *tasks]:
                task.cancel()
            await asyncio.gather(lost, *tasks, return_exceptions=True)
            self._metrics.controllers_running(names=[r.name for r in runnables], running=False)
            self.leading = False
            self._metrics.leader(is_leader=False)
            log.info("controllers stopped")
            if not lost.done() or lost.cancelled():
                await self._elector.release()
