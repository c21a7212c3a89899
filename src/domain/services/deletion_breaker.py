"""The deletion breaker as the lifecycle controller uses it: the rule
(:mod:`domain.policies.deletion_breaker`) over a state kept in the cluster.

The state is read when the controller starts (every new leader does) and
again whenever it is unknown or tripped (so an operator's reset is seen at
the next pass); every grant and every trip is written before the deletion it
allows, guarded by the stored version, so a restart storm or two writers
cannot forget a slot. If the state cannot be read or written, no node is
deleted: the breaker fails closed, with one clear log line.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import BreakerConflictError, BreakerStoreError
from domain.options import DeletionOptions
from domain.policies import deletion_breaker as rule
from domain.policies.deletion_breaker import BreakerState, StoredBreaker
from domain.ports import Clock, DeletionBreakerStore

log = logging.getLogger(__name__)

#: Writes that may be refused because someone else wrote first, before giving up.
ATTEMPTS = 3


class Grant(StrEnum):
    ALLOW = "allow"
    RATE_LIMITED = "rate-limited"
    #: the state could not be read or the grant not recorded: no deletion
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Reservation:
    grant: Grant
    #: the slot's time, to give back with :meth:`PersistedBreaker.release`
    at: float = 0.0


class PersistedBreaker:
    """One per lifecycle controller; calls are serialized (one slot decided at a time)."""

    def __init__(
        self, *, store: DeletionBreakerStore, options: DeletionOptions, clock: Clock
    ) -> None:
        self._store = store
        self._options = options
        self._clock = clock
        self._stored: StoredBreaker | None = None  # None: unknown, nothing is granted
        self._lock = asyncio.Lock()

    @property
    def state(self) -> BreakerState | None:
        """The last state read or written; None while it is unknown."""
        return None if self._stored is None else self._stored.state

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def limit(self, total_nodes: int) -> int:
        return rule.limit(total_nodes, self._options)

    def deletions_in_window(self) -> int:
        state = self.state
        if state is None:
            return 0
        return len(rule.in_window(state, now=self._now(), window=self._options.window))

    async def load(self) -> bool:
        """Read the state now; False (and one error line) when it cannot be read."""
        try:
            self._stored = await self._store.load()
        except BreakerStoreError as err:
            self._stored = None
            log.error(
                "deletion breaker: cannot read its state (%s): no node is deleted until it can",
                err,
            )
            return False
        return True

    async def refresh(self) -> None:
        """Read the state again if it is unknown or tripped (a reset is seen this way)."""
        async with self._lock:
            if self._stored is None or self._stored.state.tripped:
                await self.load()

    async def reserve(self, *, total_nodes: int) -> Reservation:
        """Ask for one deletion's slot; granted only once the grant is stored."""
        async with self._lock:
            for _ in range(ATTEMPTS):
                if self._stored is None and not await self.load():
                    return Reservation(Grant.UNKNOWN)
                assert self._stored is not None
                now = self._now()
                decision = rule.reserve(
                    self._stored.state, now=now, total_nodes=total_nodes, options=self._options
                )
                if not decision.changed:
                    return Reservation(Grant(decision.verdict.value))
                try:
                    self._stored = await self._store.save(
                        state=decision.state, version=self._stored.version
                    )
                except BreakerConflictError:
                    self._stored = None  # written meanwhile (a reset?): read, decide again
                    continue
                except BreakerStoreError as err:
                    if decision.verdict is rule.Verdict.ALLOW:
                        log.error(
                            "deletion breaker: cannot record a deletion (%s): not deleting", err
                        )
                        return Reservation(Grant.UNKNOWN)
                    log.error("deletion breaker: tripped, but cannot record it: %s", err)
                    self._stored = StoredBreaker(decision.state, self._stored.version)
                    return Reservation(Grant.RATE_LIMITED)
                return Reservation(Grant(decision.verdict.value), at=now)
            log.error("deletion breaker: its state keeps changing under it: not deleting")
            self._stored = None
            return Reservation(Grant.UNKNOWN)

    async def release(self, reservation: Reservation) -> None:
        """The granted deletion did not happen: give the slot back (best effort: a slot
        that cannot be given back stays counted, which only delays deletions)."""
        if reservation.grant is not Grant.ALLOW:
            return
        async with self._lock:
            for _ in range(ATTEMPTS):
                if self._stored is None and not await self.load():
                    return
                assert self._stored is not None
                state = rule.release(self._stored.state, granted_at=reservation.at)
                if state == self._stored.state:
                    return
                try:
                    self._stored = await self._store.save(state=state, version=self._stored.version)
                except BreakerConflictError:
                    self._stored = None
                    continue
                except BreakerStoreError as err:
                    log.warning("deletion breaker: cannot give a slot back: %s", err)
                return


async def reset_breaker(store: DeletionBreakerStore) -> BreakerState:
    """Arm the breaker and empty its window (an operator decided); the state it had.

    Guarded like every write: if the CCM writes in between, read and reset again.
    """
    for _ in range(ATTEMPTS):
        stored = await store.load()
        if stored.state == rule.ARMED:
            return stored.state
        try:
            await store.save(state=rule.ARMED, version=stored.version)
        except BreakerConflictError:
            continue
        return stored.state
    raise BreakerConflictError("the deletion breaker's state kept changing during the reset")
