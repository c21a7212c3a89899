"""The deletion breaker's rule: how many deletions a window allows, and when it trips.

A burst of "VM deleted" is more often an XO incident than a real mass
deletion, so at most ``max(minimum, percent % of nodes)`` deletions are
granted per window; the next one trips the breaker, and a tripped breaker
refuses every deletion until an operator resets it
(``doctor --reset-deletion-breaker``).

The state must outlive the process (a restart must not start the count
afresh), so it is plain data (:class:`BreakerState`) that a
``DeletionBreakerStore`` keeps in the cluster, and times are wall-clock
seconds since the epoch: a monotonic clock means nothing to the next process.
Pure: the caller passes the time in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from domain.options import DeletionOptions


class Verdict(StrEnum):
    ALLOW = "allow"
    RATE_LIMITED = "rate-limited"


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the cluster keeps: when each granted deletion was granted, and the trip."""

    #: epoch seconds of the deletions granted (reserved), oldest first
    deletions: tuple[float, ...] = ()
    #: epoch seconds at which the breaker tripped; None while it is armed
    tripped_at: float | None = None

    @property
    def tripped(self) -> bool:
        return self.tripped_at is not None


#: The state a reset leaves (and a breaker never written yet has).
ARMED = BreakerState()


@dataclass(frozen=True, slots=True)
class StoredBreaker:
    """A state as read from its store, with the store's version of it (``""``: never
    written), so a write can be refused when someone else wrote in between."""

    state: BreakerState
    version: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    #: the state to store; ``changed`` says whether it differs from the one decided on
    state: BreakerState
    changed: bool


def limit(total_nodes: int, options: DeletionOptions) -> int:
    """``max(minimum, percent % of nodes)`` deletions per window."""
    return max(options.rate_minimum, math.ceil(total_nodes * options.rate_percent / 100))


def in_window(state: BreakerState, *, now: float, window: float) -> tuple[float, ...]:
    """The deletions still inside the window ending at ``now``. One dated in the
    future (another replica's clock ahead of ours) stays counted."""
    return tuple(at for at in state.deletions if at > now - window)


def reserve(
    state: BreakerState, *, now: float, total_nodes: int, options: DeletionOptions
) -> Decision:
    """One deletion asked for: granted (its slot reserved in the returned state) while
    the window has room, else refused; the first refusal trips the breaker."""
    if state.tripped:
        return Decision(Verdict.RATE_LIMITED, state, changed=False)
    kept = in_window(state, now=now, window=options.window)
    if len(kept) >= limit(total_nodes, options):
        return Decision(Verdict.RATE_LIMITED, BreakerState(kept, tripped_at=now), changed=True)
    # The slot is taken now, before the deletion: a second path asking meanwhile
    # must see it, or both could take the last free slot.
    return Decision(Verdict.ALLOW, BreakerState((*kept, now)), changed=True)


#: Stores keep times to the microsecond: a slot given back matches within this.
SAME_TIME = 1e-3


def release(state: BreakerState, *, granted_at: float) -> BreakerState:
    """A granted deletion did not happen: give its slot back (one slot of that time)."""
    deletions = list(state.deletions)
    for i, at in enumerate(deletions):
        if abs(at - granted_at) < SAME_TIME:
            del deletions[i]
            break
    return BreakerState(tuple(deletions), state.tripped_at)
