"""XO snapshots shared by whoever needs one at about the same time.

A snapshot costs three XO requests whatever the number of VMs. Two kinds of
readers want one at about the same moment, and each provider of the container
(:class:`SharedSnapshots`, one per use) shares one among them:

- ``status_snapshots`` (2 s): the label-sync pass and the address pass, which run
  every ``--node-status-update-frequency`` and start together;
- ``burst_snapshots`` (10 s): the nodes that join in a burst (the cloud-node
  controller decides when a burst is on: :class:`BurstGate`), instead of one
  lookup by id per node.

Sharing never decides whether an answer is fresh enough to write from: every
snapshot carries when it was observed, and the freshness rule
(``domain.freshness``) judges it per VM, as it judges a fresh answer. A reader
whose VM changed after the snapshot started gets a refusal and asks XO again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from domain.freshness import Freshness, ObservedSnapshot
from domain.ports import Clock, Inventory
from domain.sharing import shared


class SharedSnapshots:
    """Implements ``domain.ports.Snapshots``: one snapshot in flight at a time, and the
    last one again while it is at most ``max_age`` seconds old."""

    def __init__(
        self, *, inventory: Inventory, freshness: Freshness, clock: Clock, max_age: float
    ) -> None:
        self._inventory = inventory
        self._freshness = freshness
        self._clock = clock
        self._max_age = max_age
        self._last: ObservedSnapshot | None = None
        self._pending: asyncio.Future[ObservedSnapshot] | None = None
        #: snapshots taken from XO (tests and the benchmark count them)
        self.taken = 0

    async def take(self) -> ObservedSnapshot:
        last = self._last
        if last is not None and self._clock.monotonic() - last.observation.at <= self._max_age:
            return last
        if self._pending is None:
            self._pending = shared(self._take())
        return await asyncio.shield(self._pending)

    async def _take(self) -> ObservedSnapshot:
        try:
            snapshot, seen = await self._freshness.observe(self._inventory.snapshot)
        finally:
            self._pending = None
        self.taken += 1
        self._last = ObservedSnapshot(snapshot, seen)
        return self._last


#: Queued nodes that make a burst worth a snapshot.
MIN_DEPTH = 10
#: Seconds over which lookups are counted towards a burst.
WINDOW = 10.0


class BurstGate:
    """Whether nodes are joining in a burst: at least ``min_depth`` queued, or that many
    lookups asked for within ``window`` seconds (workers that keep up with a burst leave
    the queue short)."""

    def __init__(
        self,
        *,
        clock: Clock,
        depth: Callable[[], int],
        min_depth: int = MIN_DEPTH,
        window: float = WINDOW,
    ) -> None:
        self._clock = clock
        self._depth = depth
        self._min_depth = min_depth
        self._window = window
        self._asked: deque[float] = deque()

    def __call__(self) -> bool:
        now = self._clock.monotonic()
        self._asked.append(now)
        while self._asked and self._asked[0] < now - self._window:
            self._asked.popleft()
        return len(self._asked) >= self._min_depth or self._depth() >= self._min_depth
