"""The guards in front of node deletion.

Deleting a Node evicts its pods and cannot be undone; XO outages look like
deletions for a while. So a VM must be seen gone twice, ``confirm_delay``
apart, and a burst of deletions trips a breaker that only an operator
resets (by restarting the CCM once the cause is understood).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from enum import StrEnum

from domain.options import DeletionOptions


class Verdict(StrEnum):
    ALLOW = "allow"
    WAIT_CONFIRMATION = "wait-confirmation"
    RATE_LIMITED = "rate-limited"


class DeletionGuard:
    """Pure bookkeeping (time is passed in); one per lifecycle controller."""

    def __init__(self, options: DeletionOptions) -> None:
        self.options = options
        self._first_gone: dict[str, float] = {}
        self._deleted_at: deque[float] = deque()
        self._reserved: dict[str, float] = {}
        self.tripped = False

    def limit(self, total_nodes: int) -> int:
        """``max(minimum, percent % of nodes)`` deletions per window."""
        return max(
            self.options.rate_minimum, math.ceil(total_nodes * self.options.rate_percent / 100)
        )

    def confirm_in(self, uid: str, now: float) -> float:
        """Seconds until a VM first seen gone at some point may be confirmed gone."""
        first = self._first_gone.get(uid, now)
        return max(0.0, first + self.options.confirm_delay - now)

    def check(self, *, uid: str, now: float, total_nodes: int) -> Verdict:
        """Called each time the node's VM is seen deleted."""
        first = self._first_gone.setdefault(uid, now)
        if now - first < self.options.confirm_delay:
            return Verdict.WAIT_CONFIRMATION
        if self.tripped:
            return Verdict.RATE_LIMITED
        while self._deleted_at and self._deleted_at[0] <= now - self.options.window:
            self._deleted_at.popleft()
        if len(self._deleted_at) >= self.limit(total_nodes):
            self.tripped = True
            return Verdict.RATE_LIMITED
        # Reserve the slot now: a second check while this deletion is in flight
        # must see it, or two paths could both take the last free slot.
        self._deleted_at.append(now)
        self._reserved[uid] = now
        return Verdict.ALLOW

    def watching(self, uid: str) -> bool:
        """Whether the node's VM was seen gone and not yet seen back (its next check
        must happen, or the sighting would outlive the node's recovery)."""
        return uid in self._first_gone

    def seen_present(self, uid: str) -> None:
        """The VM exists (or the node is Ready): forget an earlier sighting."""
        self._first_gone.pop(uid, None)

    def deleted(self, uid: str, now: float) -> None:
        """The deletion happened (its slot was reserved by ``check``, or is taken now)."""
        self._first_gone.pop(uid, None)
        if self._reserved.pop(uid, None) is None:
            self._deleted_at.append(now)

    def release(self, uid: str) -> None:
        """The granted deletion did not happen: free its slot."""
        at = self._reserved.pop(uid, None)
        if at is not None:
            with contextlib.suppress(ValueError):  # already out of the window
                self._deleted_at.remove(at)

    @property
    def deletions_in_window(self) -> int:
        return len(self._deleted_at)

    def deletions_within_window(self, now: float) -> int:
        """Deletions (granted or done) in the window ending at ``now``; pure."""
        return sum(1 for at in self._deleted_at if at > now - self.options.window)
