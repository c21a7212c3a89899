"""One XO snapshot for the nodes that join together.

A node alone is looked up by id (one XO request). When many join at once,
asking XO once per node costs a request each; one snapshot (three requests,
whatever the number of VMs) answers them all. :class:`BurstSnapshot` takes one
when the cloud-node queue holds at least ``min_depth`` nodes, or when that many
lookups were asked for within ``max_age`` seconds (workers that keep up with a
burst leave the queue short), and shares it, indexed once, for ``max_age``
seconds. Registration falls back to a lookup by id for whatever the snapshot
cannot answer (a VM created after it, or one without an address yet), and the
controller never offers it to a retry or to a node an XO change just poked, so
a stale answer is never used twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from domain.errors import CCMError
from domain.matching import VMIndex
from domain.ports import Clock, Inventory

log = logging.getLogger(__name__)

#: Queued nodes that make a burst worth a snapshot.
MIN_DEPTH = 10
#: Seconds a burst's snapshot answers lookups.
MAX_AGE = 10.0


class BurstSnapshot:
    """``await index()``: a recent snapshot's index while nodes join in a burst, else None."""

    def __init__(
        self,
        *,
        inventory: Inventory,
        clock: Clock,
        depth: Callable[[], int],
        min_depth: int = MIN_DEPTH,
        max_age: float = MAX_AGE,
    ) -> None:
        self._inventory = inventory
        self._clock = clock
        self._depth = depth
        self._min_depth = min_depth
        self._max_age = max_age
        self._index: VMIndex | None = None
        self._taken_at = 0.0
        self._pending: asyncio.Future[VMIndex | None] | None = None
        self._asked: deque[float] = deque()
        #: snapshots taken (tests and the benchmark count them)
        self.taken = 0

    def _fresh(self) -> VMIndex | None:
        if self._index is not None and self._clock.monotonic() - self._taken_at <= self._max_age:
            return self._index
        self._index = None
        return None

    def _bursting(self) -> bool:
        now = self._clock.monotonic()
        self._asked.append(now)
        while self._asked and self._asked[0] < now - self._max_age:
            self._asked.popleft()
        return len(self._asked) >= self._min_depth or self._depth() >= self._min_depth

    async def index(self) -> VMIndex | None:
        """The shared index: the fresh one, else a new one in a burst, else None."""
        current = self._fresh()
        if current is not None:
            return current
        if self._pending is None:
            if not self._bursting():
                return None
            self._pending = asyncio.ensure_future(self._take())
        pending = self._pending
        return await asyncio.shield(pending)

    async def _take(self) -> VMIndex | None:
        started = self._clock.monotonic()
        try:
            snapshot = await self._inventory.snapshot()
        except CCMError as err:
            log.warning("burst snapshot failed, looking nodes up one by one: %s", err)
            return None
        finally:
            self._pending = None
        self._index = VMIndex(snapshot)
        self._taken_at = started
        self.taken += 1
        log.debug(
            "burst: one snapshot of %d VMs for %d queued nodes", len(snapshot.vms), self._depth()
        )
        return self._index
