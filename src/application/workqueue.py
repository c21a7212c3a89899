"""A rate-limited, de-duplicating work queue with client-go's semantics.

- a key queued twice is processed once (``dirty`` set);
- a key re-added while a worker holds it is processed again after ``done``,
  never by two workers at once (``processing`` set);
- ``add_after`` delays on the Clock port, so tests drive it with a fake clock;
- ``add_rate_limited`` delays by the controller rate limiter.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from typing import Any

from application.rate_limit import ControllerRateLimiter
from domain.ports import Clock, Metrics


class ShutDown(Exception):
    """Raised by ``get`` once the queue is shut down and drained of waiters."""


class WorkQueue:
    def __init__(
        self,
        *,
        name: str,
        clock: Clock,
        rate_limiter: ControllerRateLimiter,
        metrics: Metrics,
        metric_name: str | None = None,
    ) -> None:
        self.name = name
        #: the ``name`` of its ``workqueue_*`` series (logs and tasks say ``name``)
        self.metric_name = metric_name or name
        self._clock = clock
        self._limiter = rate_limiter
        self._metrics = metrics
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._ready = asyncio.Condition()
        self._waiting: list[tuple[float, int, str]] = []
        self._waiting_at: dict[str, float] = {}
        self._seq = itertools.count()
        self._waiter_wakeup = asyncio.Event()
        self._shutdown = False
        self._waiter_task: asyncio.Task[None] | None = None
        #: when each queued key was added, and when each key in work was taken
        self._added_at: dict[str, float] = {}
        self._taken_at: dict[str, float] = {}
        # Present from the start, as client-go's are: an empty queue reads 0, not nothing.
        metrics.queue_depth(queue=self.metric_name, depth=0)
        metrics.queue_in_progress(queue=self.metric_name, probe=self._in_progress)

    def _in_progress(self) -> tuple[float, float]:
        """Seconds of work taken and not done yet, summed, and the longest of them."""
        now = self._clock.monotonic()
        running = [now - at for at in tuple(self._taken_at.values())]
        return sum(running), max(running, default=0.0)

    def __len__(self) -> int:
        return len(self._queue)

    def _ensure_waiter(self) -> None:
        if self._waiter_task is None and not self._shutdown:
            self._waiter_task = asyncio.get_running_loop().create_task(
                self._waiter_loop(), name=f"workqueue-{self.name}-delays"
            )

    async def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        self._metrics.queue_added(queue=self.metric_name)
        self._added_at.setdefault(key, self._clock.monotonic())
        if key in self._processing:
            return
        self._queue.append(key)
        self._metrics.queue_depth(queue=self.metric_name, depth=len(self._queue))
        async with self._ready:
            self._ready.notify()

    async def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            await self.add(key)
            return
        at = self._clock.monotonic() + delay
        if key in self._waiting_at and self._waiting_at[key] <= at:
            return
        self._waiting_at[key] = at
        heapq.heappush(self._waiting, (at, next(self._seq), key))
        self._ensure_waiter()
        self._waiter_wakeup.set()

    async def add_rate_limited(self, key: str) -> None:
        self._metrics.queue_retried(queue=self.metric_name)
        await self.add_after(key, self._limiter.when(key))

    def forget(self, key: str) -> None:
        self._limiter.forget(key)

    def retries(self, key: str) -> int:
        return self._limiter.retries(key)

    async def get(self) -> str:
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self._queue) or self._shutdown)
            if not self._queue:
                raise ShutDown(self.name)
            key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        now = self._clock.monotonic()
        self._metrics.queue_waited(
            queue=self.metric_name, seconds=now - self._added_at.pop(key, now)
        )
        self._taken_at[key] = now
        self._metrics.queue_depth(queue=self.metric_name, depth=len(self._queue))
        return key

    async def done(self, key: str) -> None:
        self._processing.discard(key)
        taken = self._taken_at.pop(key, None)
        if taken is not None:
            self._metrics.queue_work_duration(
                queue=self.metric_name, seconds=self._clock.monotonic() - taken
            )
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            async with self._ready:
                self._ready.notify()

    async def shutdown(self) -> None:
        self._shutdown = True
        if self._waiter_task is not None:
            self._waiter_task.cancel()
            await asyncio.gather(self._waiter_task, return_exceptions=True)
            self._waiter_task = None
        async with self._ready:
            self._ready.notify_all()

    async def _waiter_loop(self) -> None:
        """Move delayed keys to the queue when due; wake early for earlier keys."""
        while True:
            self._waiter_wakeup.clear()
            now = self._clock.monotonic()
            while self._waiting and self._waiting[0][0] <= now:
                at, _, key = heapq.heappop(self._waiting)
                if self._waiting_at.get(key) == at:
                    del self._waiting_at[key]
                    await self.add(key)
            sleep: asyncio.Future[None]
            if self._waiting:
                sleep = asyncio.ensure_future(self._clock.sleep(self._waiting[0][0] - now))
            else:
                sleep = asyncio.get_running_loop().create_future()
            wake = asyncio.ensure_future(self._waiter_wakeup.wait())
            try:
                waiters: set[asyncio.Future[Any]] = {sleep, wake}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (sleep, wake):
                    fut.cancel()
                await asyncio.gather(sleep, wake, return_exceptions=True)
