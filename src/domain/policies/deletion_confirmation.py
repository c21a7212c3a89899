"""The confirmation delay in front of node deletion.

Deleting a Node evicts its pods and cannot be undone; XO outages look like
deletions for a while. So a VM must be seen gone twice, ``confirm_delay``
apart, before its node may be deleted (and then the deletion breaker,
:mod:`domain.policies.deletion_breaker`, still has its say). The sightings
live in memory only: a restart starts every confirmation again, which only
delays a deletion.
"""

from __future__ import annotations

from collections.abc import Collection


class DeletionConfirmation:
    """Pure bookkeeping (time is passed in, monotonic); one per lifecycle controller."""

    def __init__(self, confirm_delay: float) -> None:
        self.confirm_delay = confirm_delay
        self._first_gone: dict[str, float] = {}

    def confirmed(self, uid: str, now: float) -> bool:
        """The node's VM is seen gone now: whether it was first seen gone long enough ago."""
        first = self._first_gone.setdefault(uid, now)
        return now - first >= self.confirm_delay

    def confirm_in(self, uid: str, now: float) -> float:
        """Seconds until a VM first seen gone at some point may be confirmed gone."""
        first = self._first_gone.get(uid, now)
        return max(0.0, first + self.confirm_delay - now)

    def watching(self, uid: str) -> bool:
        """Whether the node's VM was seen gone and not yet seen back (its next check
        must happen, or the sighting would outlive the node's recovery)."""
        return uid in self._first_gone

    def seen_present(self, uid: str) -> None:
        """The VM exists (or the node is Ready, or it was deleted): forget a sighting."""
        self._first_gone.pop(uid, None)

    def keep_only(self, uids: Collection[str]) -> None:
        """Forget the sightings of nodes that no longer exist (deleted elsewhere)."""
        for uid in [u for u in self._first_gone if u not in uids]:
            del self._first_gone[uid]

    def __len__(self) -> int:
        return len(self._first_gone)
