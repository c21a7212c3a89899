"""The controller manager: enabled controllers behind a leader gate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from domain.ports import LeaderElector, Metrics

log = logging.getLogger(__name__)


class Runnable(Protocol):
    name: str

    async def run(self) -> None: ...


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
            self.leading = False
            self._metrics.leader(is_leader=False)
            log.info("controllers stopped")
            if not lost.done() or lost.cancelled():
                await self._elector.release()
