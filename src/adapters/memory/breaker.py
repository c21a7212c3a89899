"""The deletion breaker's state in memory, kept like the cluster keeps it."""

from __future__ import annotations

import itertools

from domain.errors import BreakerConflictError, BreakerStoreError
from domain.policies.deletion_breaker import ARMED, BreakerState, StoredBreaker


class InMemoryBreakerStore:
    """Implements the DeletionBreakerStore port.

    Every write bumps the version and a write from a stale version raises
    BreakerConflictError, as the Lease's resourceVersion does. Share one
    instance between two services to play a restart (the process goes, the
    store stays); ``fail_reads``/``fail_writes`` play an API server that
    cannot be reached; ``writes`` counts the writes.
    """

    def __init__(self) -> None:
        self.stored = StoredBreaker(ARMED)
        self.fail_reads: BreakerStoreError | None = None
        self.fail_writes: BreakerStoreError | None = None
        self.writes = 0
        self._versions = itertools.count(1)

    async def load(self) -> StoredBreaker:
        if self.fail_reads is not None:
            raise self.fail_reads
        return self.stored

    async def save(self, *, state: BreakerState, version: str) -> StoredBreaker:
        if self.fail_writes is not None:
            raise self.fail_writes
        if version != self.stored.version:
            raise BreakerConflictError(
                f"deletion breaker: version {version or '(none)'} is not the stored "
                f"{self.stored.version or '(none)'}"
            )
        self.writes += 1
        self.stored = StoredBreaker(state, str(next(self._versions)))
        return self.stored

    def reset(self) -> None:
        """What ``doctor --reset-deletion-breaker`` does: armed, nothing in the window."""
        self.stored = StoredBreaker(ARMED, str(next(self._versions)))
