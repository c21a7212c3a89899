"""The lifecycle controller's deletion breaker kept in its store, dry runs outside it,
and per-node state that leaves with the node (issue 13, cases 4, 5 and 7).

The store is the in-memory twin of the Lease the CCM keeps it in (the contract
test holds both to the same rules; ``tests/integration`` restarts real processes).
"""

from __future__ import annotations

import logging

import pytest

from domain.errors import BreakerStoreError, NodeStoreError
from domain.options import CCMOptions, DeletionOptions
from domain.policies.lifecycle import LifecycleAction
from domain.services import LifecycleService
from tests.world import ONE_POOL, World

#: deletions at the first sighting, at most 5 per window (the default limit)
AT_ONCE = DeletionOptions(confirm_delay=0)


def process(world: World, deletion: DeletionOptions = AT_ONCE) -> LifecycleService:
    """A fresh CCM process's lifecycle service (all its memory new) on ``world``."""
    return world.restarted(options=CCMOptions(deletion=deletion)).lifecycle


def given() -> World:
    """XO, the Nodes and the breaker's store: what outlives one CCM process."""
    return World(ONE_POOL)


# -- case 4: the breaker's count outlives the process --------------------------------------
async def test_restarts_keep_the_breakers_count() -> None:
    world = given()
    world.delete_vms(world.add_series(15))
    deleted = 0
    for _ in range(3):  # three processes in a row, one pass each
        svc = process(world)
        await svc.start()
        deleted += (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE]
    assert deleted == 5
    assert len(world.nodes.nodes) == 10
    assert world.breaker_store.stored.state.tripped


async def test_a_breaker_that_cannot_be_read_deletes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = given()
    world.delete_vms(world.add_series(2))
    world.breaker_store.fail_reads = BreakerStoreError(
        "Lease kube-system/x: 503 ServiceUnavailable"
    )
    svc = process(world)
    with caplog.at_level(logging.ERROR):
        await svc.start()
        result = await svc.run_pass()
    assert result.actions[LifecycleAction.DELETION_BREAKER_UNKNOWN] == 2
    assert len(world.nodes.nodes) == 2
    assert "deletion breaker: cannot read its state" in caplog.text
    assert world.events.reasons().count("NodeDeletionBreakerUnknown") == 2

    world.breaker_store.fail_reads = None  # the API server answers again: deletions resume
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 2


async def test_a_grant_that_cannot_be_recorded_deletes_nothing() -> None:
    world = given()
    world.delete_vms(world.add_series(1))
    svc = process(world)
    await svc.start()
    world.breaker_store.fail_writes = BreakerStoreError("Lease kube-system/x: 403 Forbidden")
    result = await svc.run_pass()
    assert result.actions[LifecycleAction.DELETION_BREAKER_UNKNOWN] == 1
    assert "n0" in world.nodes.nodes


async def test_a_reset_is_seen_at_the_next_pass() -> None:
    world = given()
    world.delete_vms(world.add_series(7))
    svc = process(world)
    await svc.start()
    first = await svc.run_pass()
    assert first.actions[LifecycleAction.DELETE_NODE] == 5
    assert first.actions[LifecycleAction.DELETION_RATE_LIMITED] == 2
    world.breaker_store.reset()  # doctor --reset-deletion-breaker
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 2
    assert not world.nodes.nodes


async def test_a_reset_while_armed_is_not_overwritten() -> None:
    """The next grant's write finds the version changed, reads the reset, decides again."""
    world = given()
    world.delete_vms(world.add_series(4))
    svc = process(world)
    await svc.start()
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 4
    world.breaker_store.reset()
    world.delete_vms(world.add_series(5, start=10))
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 5


async def test_a_failed_deletion_gives_its_slot_back_in_the_store() -> None:
    world = given()
    world.delete_vms(world.add_series(1))
    svc = process(world)
    await svc.start()
    world.nodes.fail_writes = NodeStoreError("API server down")
    await svc.run_pass()
    assert world.breaker_store.stored.state.deletions == ()


# -- case 5: dry run outside the breaker ------------------------------------------------------
async def test_a_dry_run_reports_every_node_it_would_delete_at_every_pass() -> None:
    world = given()
    world.delete_vms(world.add_series(8))
    svc = process(world, DeletionOptions(confirm_delay=0, dry_run=True))
    await svc.start()
    for _ in range(10):
        result = await svc.run_pass()
        assert result.actions[LifecycleAction.DRY_RUN_DELETE] == 8, result.actions
        assert result.actions[LifecycleAction.DELETION_RATE_LIMITED] == 0
    assert world.events.reasons().count("DeletingNodeDryRun") == 80
    assert len(world.nodes.nodes) == 8
    assert world.breaker_store.writes == 0  # never reserved a slot


async def test_a_dry_run_still_waits_for_the_confirmation() -> None:
    world = given()
    world.delete_vms(world.add_series(1))
    svc = process(world, DeletionOptions(confirm_delay=30, dry_run=True))
    assert (await svc.run_pass()).actions[LifecycleAction.WAIT_CONFIRMATION] == 1
    await world.clock.advance(30)
    assert (await svc.run_pass()).actions[LifecycleAction.DRY_RUN_DELETE] == 1


async def test_a_dry_run_after_a_trip_still_reports_every_node() -> None:
    world = given()
    world.delete_vms(world.add_series(7))
    real = process(world)
    await real.start()
    await real.run_pass()  # 5 deleted, tripped
    dry = process(world, DeletionOptions(confirm_delay=0, dry_run=True))
    await dry.start()
    assert (await dry.run_pass()).actions[LifecycleAction.DRY_RUN_DELETE] == 2


# -- case 7: per-node state leaves with the node -----------------------------------------------
async def test_a_node_deleted_by_someone_else_leaves_no_state() -> None:
    world = given()
    halted = world.add_series(1, running=False)
    gone = world.add_series(1, start=1)
    world.delete_vms(gone)
    svc = process(world, DeletionOptions(confirm_delay=300))
    await svc.start()
    result = await svc.run_pass()
    assert result.actions[LifecycleAction.ADD_SHUTDOWN_TAINT] == 1
    assert result.actions[LifecycleAction.WAIT_CONFIRMATION] == 1
    assert svc.tracked_nodes == 2  # a shutdown time and a first sighting

    for name in [*halted, *gone]:  # kubectl delete node
        del world.nodes.nodes[name]
    await svc.run_pass()
    assert svc.tracked_nodes == 0


async def test_a_node_gone_when_checked_leaves_no_state() -> None:
    world = given()
    (name,) = world.add_series(1)
    world.delete_vms([name])
    svc = process(world, DeletionOptions(confirm_delay=300))
    listed = world.nodes.nodes[name]
    await svc.check(listed)
    assert svc.tracked_nodes == 1
    del world.nodes.nodes[name]
    await svc.check(listed)  # a pass reaching a node deleted since it listed it
    assert svc.tracked_nodes == 0


async def test_dry_run_bookkeeping_stays_bounded() -> None:
    world = given()
    world.delete_vms(world.add_series(3))
    svc = process(world, DeletionOptions(confirm_delay=0, dry_run=True))
    for _ in range(50):
        await svc.run_pass()
    assert svc.tracked_nodes == 3  # one sighting per node, however many passes
    assert world.breaker_store.stored.state.deletions == ()
