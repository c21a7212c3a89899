"""The DeletionBreakerStore port's contract: in memory, and the Lease annotations
on the real kube-apiserver.

The lifecycle controller relies on exactly this: a breaker never written reads
armed; what is saved reads back (to the microsecond); a write from a stale
version is refused so a reset or another writer is never overwritten; a state
that cannot be read is an error, never an armed breaker.
"""

from __future__ import annotations

import pytest

from domain.errors import BreakerConflictError, BreakerStoreError
from domain.policies.deletion_breaker import ARMED, BreakerState
from domain.services.deletion_breaker import reset_breaker
from tests.contract.port_drivers import BreakerWorld

#: Epoch seconds with microseconds, as a deletion's grant time is.
T0 = 1_790_000_000.123456
TRIPPED = BreakerState((T0, T0 + 1.5, T0 + 2.25), tripped_at=T0 + 3)


async def test_a_breaker_never_written_reads_armed(breaker_world: BreakerWorld) -> None:
    stored = await breaker_world.store.load()
    assert stored.state == ARMED
    assert stored.version == ""


async def test_what_is_saved_reads_back(breaker_world: BreakerWorld) -> None:
    store = breaker_world.store
    first = await store.save(state=BreakerState((T0,)), version="")
    second = await store.save(state=TRIPPED, version=first.version)
    assert second.version != first.version
    again = await (await breaker_world.other_writer()).load()
    assert again.version == second.version
    assert again.state.tripped_at == pytest.approx(TRIPPED.tripped_at, abs=1e-6)
    assert again.state.deletions == pytest.approx(TRIPPED.deletions, abs=1e-6)


async def test_a_write_from_a_stale_version_is_refused(breaker_world: BreakerWorld) -> None:
    store = breaker_world.store
    read = await store.save(state=BreakerState((T0,)), version="")
    await (await breaker_world.other_writer()).save(
        state=BreakerState((T0, T0 + 1)), version=read.version
    )
    with pytest.raises(BreakerConflictError):
        await store.save(state=TRIPPED, version=read.version)
    with pytest.raises(BreakerConflictError):  # "never written" is stale too now
        await store.save(state=TRIPPED, version="")


async def test_a_reset_arms_it_and_empties_the_window(breaker_world: BreakerWorld) -> None:
    store = breaker_world.store
    await store.save(state=TRIPPED, version="")
    before = await reset_breaker(await breaker_world.other_writer())
    assert before.tripped
    after = await store.load()
    assert after.state == ARMED


async def test_a_state_that_cannot_be_read_is_an_error(breaker_world: BreakerWorld) -> None:
    await breaker_world.store.save(state=BreakerState((T0,)), version="")
    await breaker_world.spoil()
    with pytest.raises(BreakerStoreError):
        await breaker_world.store.load()
