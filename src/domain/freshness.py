"""One freshness rule for every XO read: a write never goes back in time.

XO answers reach the CCM by several routes: a lookup by id, a snapshot shared by
the periodic passes or by a burst of joining nodes, and change events. An answer
is observed somewhere between the moment its request started and the moment it
came back, and two answers about one VM can overtake each other on the way. So:

- every answer carries an :class:`Observation`: two tickets of one
  :class:`Freshness` ledger, taken just before its request started and just after
  it came back (tickets only grow, in the order the event loop hands them out);
- a change event for a VM takes a ticket when it is received: every answer whose
  request started before it is too old for that VM from then on;
- a write for a node is computed only from an answer that :meth:`Freshness.admits`:
  its request started after the newest event for that VM and after the newest
  answer already applied to it came back (or it *is* that answer). Applying it
  (:meth:`Freshness.applied`) raises the bar for every later write.

Two answers whose requests overlapped cannot be ordered; the first applied wins
and the other is refused, so its caller asks XO again and gets an answer newer
than both. Caches and memos (shared snapshots, unchanged list answers, quiet
passes) are only ways to obtain an answer; whatever they serve is judged by this
rule like a fresh one. Time does not enter the rule; it only bounds the memory the
ledger keeps: an answer older than :data:`HORIZON` seconds is never admitted, so
entries older than that can be dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from domain.matching import VMIndex
from domain.model import InventorySnapshot
from domain.ports import Clock, Inventory

T = TypeVar("T")

#: Seconds after which an answer is too old to write from, whatever else happened.
#: Far above any request (XO's retry deadline) or shared snapshot (10 s) age.
HORIZON = 600.0


@dataclass(frozen=True, slots=True, order=True)
class Observation:
    """When an XO answer was observed: between ticket ``start`` and ticket ``end``."""

    start: int
    end: int
    #: the clock's monotonic time at ``start`` (only to forget old entries)
    at: float = 0.0

    def newer_than(self, other: Observation) -> bool:
        """Observed after ``other`` for certain: its request started after ``other`` came back."""
        return self.start >= other.end


@dataclass(slots=True)
class _Entry:
    applied: Observation | None = None
    announced: int = 0  # the ticket of the newest change event
    touched: float = 0.0


class Freshness:
    """The ledger: tickets, and per VM the newest event and the newest answer applied.

    One per process (the container's), shared by every service that reads XO and
    writes Nodes and by the change router; it lives on the event loop, so no lock.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        #: ages only bound memory; without a clock (a service built by hand) nothing is pruned
        self._clock = clock
        self._tickets = itertools.count(1)
        self._vms: dict[str, _Entry] = {}
        self._resynced = 0  # a stream reconnect: every VM may have changed
        self._pruned_at = 0.0

    # -- tickets --------------------------------------------------------------
    def ticket(self) -> int:
        return next(self._tickets)

    def begin(self) -> tuple[int, float]:
        """A request is about to start: its start ticket and time."""
        return self.ticket(), self._now()

    def finish(self, begun: tuple[int, float]) -> Observation:
        """The request begun with ``begun`` came back."""
        return Observation(start=begun[0], end=self.ticket(), at=begun[1])

    async def observe(self, read: Callable[[], Awaitable[T]]) -> tuple[T, Observation]:
        """``read()``'s answer and when it was observed (an exception passes through)."""
        begun = self.begin()
        answer = await read()
        return answer, self.finish(begun)

    # -- the rule -----------------------------------------------------------------
    def announce(self, vm_id: str) -> None:
        """A change event for ``vm_id`` was received: older answers no longer speak for it."""
        entry = self._entry(vm_id)
        entry.announced = self.ticket()
        entry.touched = self._now()

    def announce_all(self) -> None:
        """The change stream (re)connected: events may have been missed for any VM."""
        self._resynced = self.ticket()

    def changed_since(self, vm_id: str, ticket: int) -> bool:
        """Whether a change event for ``vm_id`` (or a stream reconnect, which may have
        missed one) came after ``ticket``: what XO said of the VM then may no longer
        have held all along."""
        if ticket < self._resynced:
            return True
        entry = self._vms.get(vm_id.lower())
        return entry is not None and entry.announced > ticket

    def admits(self, vm_id: str, seen: Observation) -> bool:
        """Whether a write for ``vm_id`` may be computed from an answer observed at ``seen``."""
        if self._clock is not None and self._now() - seen.at > HORIZON:
            return False
        if seen.start < self._resynced:
            return False
        entry = self._vms.get(vm_id.lower())
        if entry is None:
            return True
        if seen.start < entry.announced:
            return False
        last = entry.applied
        return last is None or seen == last or seen.newer_than(last)

    def applied(self, vm_id: str, seen: Observation) -> None:
        """A write for ``vm_id`` was computed from ``seen`` (it must be admitted)."""
        entry = self._entry(vm_id)
        if entry.applied is None or seen.newer_than(entry.applied):
            entry.applied = seen
        entry.touched = self._now()
        self._prune()

    def admit(self, vm_id: str, seen: Observation) -> bool:
        """:meth:`admits`, and when it does, :meth:`applied`: the check a plan makes."""
        if not self.admits(vm_id, seen):
            return False
        self.applied(vm_id, seen)
        return True

    @property
    def tracked(self) -> int:
        """VMs the ledger holds an entry for (bounded by ``HORIZON``)."""
        return len(self._vms)

    def _entry(self, vm_id: str) -> _Entry:
        key = vm_id.lower()
        entry = self._vms.get(key)
        if entry is None:
            entry = self._vms[key] = _Entry()
        return entry

    def _now(self) -> float:
        return 0.0 if self._clock is None else self._clock.monotonic()

    def _prune(self) -> None:
        """Drop what no admissible answer can be compared with any more (at most once a
        minute, so the cost is spread)."""
        now = self._now()
        if self._clock is None or now - self._pruned_at < 60.0:
            return
        self._pruned_at = now
        old = [key for key, entry in self._vms.items() if now - entry.touched > HORIZON]
        for key in old:
            del self._vms[key]


class ObservedSnapshot:
    """A snapshot of XO and when it was observed; indexed for lookups on first use."""

    __slots__ = ("_index", "observation", "snapshot")

    def __init__(self, snapshot: InventorySnapshot, observation: Observation) -> None:
        self.snapshot = snapshot
        self.observation = observation
        self._index: VMIndex | None = None

    @property
    def index(self) -> VMIndex:
        if self._index is None:
            self._index = VMIndex(self.snapshot)
        return self._index


class FreshSnapshots:
    """Implements ``domain.ports.Snapshots`` with a new snapshot each time (no sharing):
    the default of a service built by hand; the container shares them."""

    def __init__(self, *, inventory: Inventory, freshness: Freshness) -> None:
        self._inventory = inventory
        self._freshness = freshness

    async def take(self) -> ObservedSnapshot:
        snapshot, seen = await self._freshness.observe(self._inventory.snapshot)
        return ObservedSnapshot(snapshot, seen)
