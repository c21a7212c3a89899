"""The lifecycle controller's deletion breaker kept in its store, dry runs outside it,
and per-node state that leaves with the node (issue 13, cases 4, 5 and 7).

The store is the in-memory twin of the Lease the CCM keeps it in (the contract
test holds both to the same rules; ``tests/integration`` restarts real processes).
"""

from __future__ import annotations

import logging

import pytest

from adapters.memory import (
    FakeClock,
    InMemoryBreakerStore,
    InMemoryEventRecorder,
    InMemoryInventory,
    InMemoryNodeStore,
)
from domain.errors import BreakerStoreError, NodeStoreError
from domain.model import PowerState, Readiness
from domain.options import CCMOptions, DeletionOptions
from domain.policies.lifecycle import LifecycleAction
from domain.services import LifecycleService

from .factories import POOL_A, node, pool, vm

#: deletions at the first sighting, at most 5 per window (the default limit)
AT_ONCE = DeletionOptions(confirm_delay=0)


def _uuid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


class World:
    """XO, the Nodes and the breaker's store: what outlives one CCM process."""

    def __init__(self) -> None:
        self.xo, self.nodes, self.events = (
            InMemoryInventory(),
            InMemoryNodeStore(),
            InMemoryEventRecorder(),
        )
        self.store = InMemoryBreakerStore()
        self.clock = FakeClock()
        self.xo.add_pool(pool())

    def process(self, deletion: DeletionOptions = AT_ONCE) -> LifecycleService:
        """A fresh CCM process's lifecycle service (all its memory new)."""
        return LifecycleService(
            inventory=self.xo,
            nodes=self.nodes,
            events=self.events,
            clock=self.clock,
            breaker=self.store,
            options=CCMOptions(deletion=deletion),
        )

    def add(self, count: int, *, start: int = 0, running: bool = True) -> list[str]:
        names = []
        for i in range(start, start + count):
            state = PowerState.RUNNING if running else PowerState.HALTED
            self.xo.add_vm(vm(id=_uuid(i), power_state=state))
            self.nodes.create(
                node(
                    f"n{i}",
                    taints=(),
                    provider_id=f"xenorchestra://{POOL_A}/{_uuid(i)}",
                    readiness=Readiness.FALSE,
                )
            )
            names.append(f"n{i}")
        return names

    def delete_vms(self, names: list[str]) -> None:
        for name in names:
            self.xo.delete_vm(_uuid(int(name[1:])))


# -- case 4: the breaker's count outlives the process --------------------------------------
async def test_restarts_keep_the_breakers_count() -> None:
    world = World()
    world.delete_vms(world.add(15))
    deleted = 0
    for _ in range(3):  # three processes in a row, one pass each
        svc = world.process()
        await svc.start()
        deleted += (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE]
    assert deleted == 5
    assert len(world.nodes.nodes) == 10
    assert world.store.stored.state.tripped


async def test_a_breaker_that_cannot_be_read_deletes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.delete_vms(world.add(2))
    world.store.fail_reads = BreakerStoreError("Lease kube-system/x: 503 ServiceUnavailable")
    svc = world.process()
    with caplog.at_level(logging.ERROR):
        await svc.start()
        result = await svc.run_pass()
    assert result.actions[LifecycleAction.DELETION_BREAKER_UNKNOWN] == 2
    assert len(world.nodes.nodes) == 2
    assert "deletion breaker: cannot read its state" in caplog.text
    assert world.events.reasons().count("NodeDeletionBreakerUnknown") == 2

    world.store.fail_reads = None  # the API server answers again: deletions resume
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 2


async def test_a_grant_that_cannot_be_recorded_deletes_nothing() -> None:
    world = World()
    world.delete_vms(world.add(1))
    svc = world.process()
    await svc.start()
    world.store.fail_writes = BreakerStoreError("Lease kube-system/x: 403 Forbidden")
    result = await svc.run_pass()
    assert result.actions[LifecycleAction.DELETION_BREAKER_UNKNOWN] == 1
    assert "n0" in world.nodes.nodes


async def test_a_reset_is_seen_at_the_next_pass() -> None:
    world = World()
    world.delete_vms(world.add(7))
    svc = world.process()
    await svc.start()
    first = await svc.run_pass()
    assert first.actions[LifecycleAction.DELETE_NODE] == 5
    assert first.actions[LifecycleAction.DELETION_RATE_LIMITED] == 2
    world.store.reset()  # doctor --reset-deletion-breaker
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 2
    assert not world.nodes.nodes


async def test_a_reset_while_armed_is_not_overwritten() -> None:
    """The next grant's write finds the version changed, reads the reset, decides again."""
    world = World()
    world.delete_vms(world.add(4))
    svc = world.process()
    await svc.start()
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 4
    world.store.reset()
    world.delete_vms(world.add(5, start=10))
    assert (await svc.run_pass()).actions[LifecycleAction.DELETE_NODE] == 5


async def test_a_failed_deletion_gives_its_slot_back_in_the_store() -> None:
    world = World()
    world.delete_vms(world.add(1))
    svc = world.process()
    await svc.start()
    world.nodes.fail_writes = NodeStoreError("API server down")
    await svc.run_pass()
    assert world.store.stored.state.deletions == ()


# -- case 5: dry run outside the breaker ------------------------------------------------------
async def test_a_dry_run_reports_every_node_it_would_delete_at_every_pass() -> None:
    world = World()
    world.delete_vms(world.add(8))
    svc = world.process(DeletionOptions(confirm_delay=0, dry_run=True))
    await svc.start()
    for _ in range(10):
        result = await svc.run_pass()
        assert result.actions[LifecycleAction.DRY_RUN_DELETE] == 8, result.actions
        assert result.actions[LifecycleAction.DELETION_RATE_LIMITED] == 0
    assert world.events.reasons().count("DeletingNodeDryRun") == 80
    assert len(world.nodes.nodes) == 8
    assert world.store.writes == 0  # never reserved a slot


async def test_a_dry_run_still_waits_for_the_confirmation() -> None:
    world = World()
    world.delete_vms(world.add(1))
    svc = world.process(DeletionOptions(confirm_delay=30, dry_run=True))
    assert (await svc.run_pass()).actions[LifecycleAction.WAIT_CONFIRMATION] == 1
    world.clock._t = 30
    assert (await svc.run_pass()).actions[LifecycleAction.DRY_RUN_DELETE] == 1


async def test_a_dry_run_after_a_trip_still_reports_every_node() -> None:
    world = World()
    world.delete_vms(world.add(7))
    real = world.process()
    await real.start()
    await real.run_pass()  # 5 deleted, tripped
    dry = world.process(DeletionOptions(confirm_delay=0, dry_run=True))
    await dry.start()
    assert (await dry.run_pass()).actions[LifecycleAction.DRY_RUN_DELETE] == 2


# -- case 7: per-node state leaves with the node -----------------------------------------------
async def test_a_node_deleted_by_someone_else_leaves_no_state() -> None:
    world = World()
    halted = world.add(1, running=False)
    gone = world.add(1, start=1)
    world.delete_vms(gone)
    svc = world.process(DeletionOptions(confirm_delay=300))
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
    world = World()
    (name,) = world.add(1)
    world.delete_vms([name])
    svc = world.process(DeletionOptions(confirm_delay=300))
    listed = world.nodes.nodes[name]
    await svc.check(listed)
    assert svc.tracked_nodes == 1
    del world.nodes.nodes[name]
    await svc.check(listed)  # a pass reaching a node deleted since it listed it
    assert svc.tracked_nodes == 0


async def test_dry_run_bookkeeping_stays_bounded() -> None:
    world = World()
    world.delete_vms(world.add(3))
    svc = world.process(DeletionOptions(confirm_delay=0, dry_run=True))
    for _ in range(50):
        await svc.run_pass()
    assert svc.tracked_nodes == 3  # one sighting per node, however many passes
    assert world.store.stored.state.deletions == ()
