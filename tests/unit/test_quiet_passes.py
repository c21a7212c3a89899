"""A pass over the very inputs of a pass that found nothing to do stops at comparing them
(issue 16, at rest); any change of a node, of XO or a failure makes the next pass look
at everything again."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.memory import InMemoryMetrics
from application.controllers import CloudNodeController
from domain import labels as L
from domain.errors import NodeStoreError
from domain.model import Node, Readiness
from domain.services.quiet_pass import QuietPass
from tests.world import World

from .factories import HOST_2, UNINITIALIZED, VM_1, VM_2, node, vm

A, B = node("a"), node("b")


@pytest.mark.parametrize(
    ("remembered", "asked", "found"),
    [
        pytest.param([A, B], [A, B], "targets", id="the-very-nodes"),
        pytest.param([A, B], [replace(A), replace(B)], "targets", id="equal-copies"),
        pytest.param([A, B], [A], None, id="one-gone"),
        pytest.param([A], [A, B], None, id="one-more"),
        pytest.param([A, B], [B, A], None, id="another-order"),
        pytest.param([A, B], [A, replace(B, resource_version="9")], None, id="one-changed"),
    ],
)
def test_what_the_last_quiet_pass_derived_is_reused_only_for_equal_nodes(
    remembered: list[Node], asked: list[Node], found: str | None
) -> None:
    quiet: QuietPass[str] = QuietPass()
    assert quiet.derived_from(asked) is None  # nothing remembered yet
    quiet.remember(remembered, "targets")
    assert quiet.derived_from(asked) == found


def test_sources_must_be_the_very_objects_and_forget_drops_everything() -> None:
    quiet: QuietPass[str] = QuietPass()
    vms = {"x": vm()}
    quiet.remember([A], "targets", vms)
    assert not quiet.same_sources(vms)  # not before the nodes were found the same
    assert quiet.derived_from([A, B]) is None
    assert not quiet.same_sources(vms)  # other nodes: whatever the sources
    assert quiet.derived_from([A]) == "targets"
    assert quiet.same_sources(vms)
    assert not quiet.same_sources(dict(vms))  # equal, but not what the pass read
    assert not quiet.same_sources(vms, vms)
    quiet.forget()
    assert quiet.derived_from([A]) is None and not quiet.same_sources(vms)


async def _settled_world() -> World:
    world = World()
    world.xo.add_vm(vm())
    world.xo.add_vm(vm(id=VM_2, name_label="worker-2"))
    await world.join("worker-1")
    await world.join("worker-2", system_uuid=VM_2)
    for _ in range(2):  # the first passes settle, the next ones are quiet
        assert (await world.label_pass()).failed == 0
        await world.address_pass()
    world.nodes.writes.clear()
    return world


async def test_quiet_label_passes_write_nothing_until_xo_changes() -> None:
    world = await _settled_world()
    assert (await world.label_pass()).updated == 0
    world.xo.migrate_vm(VM_1, host_id=HOST_2)

    assert (await world.label_pass()).updated == 1
    assert world.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2
    assert (await world.label_pass()).updated == 0
    assert world.nodes.writes == {"update": 1}


async def test_a_label_edited_on_the_node_is_restored_after_quiet_passes() -> None:
    world = await _settled_world()
    edited = dict(world.nodes.nodes["worker-2"].labels) | {L.ZONE: "hand-edited"}
    world.nodes.touch("worker-2", labels=edited)

    assert (await world.label_pass()).updated == 1
    assert world.nodes.nodes["worker-2"].labels[L.ZONE] != "hand-edited"


async def test_a_failed_label_write_is_retried_by_the_next_pass_on_the_same_inputs() -> None:
    world = await _settled_world()
    world.xo.migrate_vm(VM_1, host_id=HOST_2)
    world.nodes.fail_writes = NodeStoreError("API server down")
    assert (await world.label_pass()).failed == 1
    world.nodes.fail_writes = None

    assert (await world.label_pass()).updated == 1  # same nodes, same XO
    assert world.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2


async def test_quiet_address_passes_follow_a_new_vm_address() -> None:
    world = await _settled_world()
    assert (await world.address_pass()).patched == 0
    world.xo.update_vm(VM_2, main_ip_address="10.1.6.200", addresses={"0/ipv4/0": "10.1.6.200"})

    assert (await world.address_pass()).patched == 1
    assert "10.1.6.200" in {a.address for a in world.nodes.nodes["worker-2"].addresses}
    world.nodes.fail_writes = NodeStoreError("API server down")
    world.xo.update_vm(VM_2, main_ip_address="10.1.6.201", addresses={"0/ipv4/0": "10.1.6.201"})
    assert (await world.address_pass()).failed == 1
    world.nodes.fail_writes = None
    assert (await world.address_pass()).patched == 1  # retried


async def test_a_quiet_lifecycle_pass_still_sees_a_node_going_not_ready() -> None:
    world = await _settled_world()
    await world.lifecycle.start()
    assert not (await world.lifecycle.run_pass()).actions  # every node Ready: none checked
    assert not (await world.lifecycle.run_pass()).actions
    world.xo.stop_vm(VM_1)
    world.nodes.set_readiness("worker-1", Readiness.FALSE)

    await world.lifecycle.run_pass()

    assert world.nodes.nodes["worker-1"].has_taint(L.SHUTDOWN_TAINT.key)


async def test_the_waiting_count_follows_a_new_node_after_unchanged_reports() -> None:
    world = await _settled_world()
    metrics = InMemoryMetrics()
    controller = CloudNodeController(
        service=world.registration, nodes=world.nodes, clock=world.clock, metrics=metrics
    )
    await controller.report_waiting()
    await controller.report_waiting()
    assert metrics.waiting[0] == 0
    world.nodes.create(node("worker-3", taints=(UNINITIALIZED,)))

    await controller.report_waiting()

    assert metrics.waiting[0] == 1
