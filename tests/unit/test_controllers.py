"""The controllers end to end on the in-memory adapters and a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from domain import labels as L
from domain.errors import InventoryError
from domain.model import Node, NodeChange, Readiness
from domain.options import CCMOptions, TopologyOptions, ZoneSource
from domain.services.registration import Outcome
from tests.world import ONE_HOST, World, controllers_world, vm_uuid

from .factories import HOST_1, HOST_2, VM_1, node, pool, vm


async def test_new_node_is_initialized_from_the_watch() -> None:
    async with controllers_world() as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        assert not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)


async def test_node_whose_vm_appears_later_is_initialized_by_the_change_event() -> None:
    async with controllers_world() as h:
        h.nodes.create(node())
        await h.clock.advance(0.001)
        assert h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)
        h.xo.add_vm(vm())  # XO announces it; no need to wait for the backoff
        await h.clock.settle()
        assert not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)


async def test_xo_outage_backs_off_then_recovers() -> None:
    async with controllers_world() as h:
        h.xo.add_vm(vm())
        h.xo.fail_with = InventoryError("XO down")
        h.nodes.create(node())
        await h.clock.advance(1.0)
        failures = h.xo.requests["get_vm"]
        assert 5 <= failures <= 10  # 5 ms doubling: ~8 attempts in the first second
        h.xo.fail_with = None
        await h.clock.advance(2.0)
        assert not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)


async def test_migration_reaches_labels_through_the_change_stream() -> None:
    async with controllers_world() as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.xo.migrate_vm(VM_1, host_id=HOST_2)
        await h.clock.settle()  # no time passes: the event did it, not the 5-minute loop
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2
        assert "NodeZoneChanged" in h.events.reasons()


async def test_a_retagged_host_moves_the_zone_through_the_change_stream() -> None:
    h = controllers_world()
    h.container.options.override(
        CCMOptions(topology=TopologyOptions(zone_source=ZoneSource.HOST_TAG))
    )
    async with h:
        h.xo.tag_host(HOST_1, tags=["k8s.zone=rack-a"])
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == "rack-a"

        h.xo.tag_host(HOST_1, tags=["k8s.zone=rack-b"])
        await h.clock.settle()  # no time passes: the host's event did it, not the loop

        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == "rack-b"
        assert h.events.reasons().count("NodeZoneChanged") == 1


@pytest.mark.parametrize("how", ["label-sync", "label-pass", "registration"])
async def test_a_host_retagged_while_its_older_tags_are_written_is_followed(how: str) -> None:
    """Review s8a/s9: the VM's node is written with HOST_2's tags (it migrated there,
    or joins there) and HOST_2 is retagged while that write is on its way. The change
    router pokes the nodes labelled HOST_2, which this one is not yet; the writer
    sees the host it used replaced and syncs the node again."""
    h = controllers_world(node_status_update_frequency=300.0)
    h.container.options.override(
        CCMOptions(topology=TopologyOptions(zone_source=ZoneSource.HOST_TAG))
    )
    async with h:
        h.xo.tag_host(HOST_1, tags=["k8s.zone=rack-a"])
        h.xo.tag_host(HOST_2, tags=["k8s.zone=rack-b"])
        write = h.nodes.update

        async def retagged_on_the_way(*, node: Node, change: NodeChange) -> Node:
            if change.set_labels.get(L.ZONE) == "rack-b":
                h.xo.tag_host(HOST_2, tags=["k8s.zone=rack-c"])
                for _ in range(10):  # the router handles the host's event meanwhile
                    await asyncio.sleep(0)
            return await write(node=node, change=change)

        h.nodes.update = retagged_on_the_way  # type: ignore[method-assign]
        if how == "registration":
            h.xo.add_vm(vm(container=HOST_2))
            h.nodes.create(node())
        else:
            h.xo.add_vm(vm())
            h.nodes.create(node())
            await h.clock.advance(0.001)
            assert h.nodes.nodes["worker-1"].labels[L.ZONE] == "rack-a"
        if how == "label-sync":
            h.xo.migrate_vm(VM_1, host_id=HOST_2)
        elif how == "label-pass":  # silently (no event): the 5-minute pass finds it
            h.xo.vms[VM_1] = replace(h.xo.vms[VM_1], container=HOST_2)
            await h.clock.advance(301)
        await h.clock.settle()

        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == "rack-c"


async def test_periodic_label_sync_catches_up_without_events() -> None:
    async with controllers_world(node_status_update_frequency=300.0) as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.xo.vms[VM_1] = replace(h.xo.vms[VM_1], container=HOST_2)  # silently: no event
        await h.clock.advance(299)
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] != HOST_2
        await h.clock.advance(2)
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2


async def test_removed_vm_triggers_an_immediate_lifecycle_check() -> None:
    async with controllers_world(node_monitor_period=3600.0) as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.nodes.set_readiness("worker-1", Readiness.FALSE)
        h.xo.delete_vm(VM_1)
        await h.clock.settle()
        assert "worker-1" not in h.nodes.nodes


async def test_pool_disconnect_storm_deletes_nothing() -> None:
    async with controllers_world() as h:
        for i in range(50):
            vm_id = f"{i:08x}-0000-4000-8000-000000000000"
            h.xo.add_vm(vm(id=vm_id, name_label=f"w{i}"))
            h.nodes.create(node(f"w{i}", system_uuid=vm_id))
        await h.clock.advance(1)
        for i in range(50):
            h.nodes.set_readiness(f"w{i}", Readiness.UNKNOWN)
        h.xo.disconnect_pool(pool().id)
        await h.clock.advance(60)
        assert len(h.nodes.nodes) == 50
        assert "DeletingNode" not in h.events.reasons()


@pytest.mark.parametrize(
    ("controllers", "initialized"),
    [
        pytest.param(("cloud-node",), True, id="cloud-node-on"),
        pytest.param(("cloud-node-lifecycle", "cloud-node-label-sync"), False, id="cloud-node-off"),
    ],
)
async def test_disabled_controllers_do_not_run(
    controllers: tuple[str, ...], initialized: bool
) -> None:
    async with controllers_world(controllers=controllers) as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(1)
        assert (not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)) is initialized


async def _joining(h: World, count: int, *, with_address: bool = True) -> list[str]:
    """``count`` VMs (their XO events handled), then their nodes all at once."""
    ids = [f"0000{i:04d}-c0e8-721c-45ec-f11276377030" for i in range(count)]
    for i, vm_id in enumerate(ids):
        address = f"10.1.7.{i % 250}" if with_address else None
        h.xo.add_vm(vm(id=vm_id, name_label=f"w-{i}", main_ip_address=address))
    await h.clock.settle()
    h.xo.requests.clear()
    for i, vm_id in enumerate(ids):
        h.nodes.create(node(f"w-{i}", system_uuid=vm_id))
    return [f"w-{i}" for i in range(count)]


async def test_nodes_joining_together_share_one_xo_snapshot() -> None:
    async with controllers_world() as h:
        names = await _joining(h, 200)
        await h.clock.advance(0.001)
        assert all(not h.nodes.nodes[n].has_taint(L.UNINITIALIZED_TAINT_KEY) for n in names)
        lookups = h.xo.requests["snapshot"] * 3 + h.xo.requests["get_vm"]
        assert h.xo.requests["snapshot"] >= 1
        assert lookups <= 0.1 * len(names), h.xo.requests


async def test_a_node_alone_is_looked_up_by_id_not_by_snapshot() -> None:
    async with controllers_world() as h:
        await _joining(h, 1)
        await h.clock.advance(0.001)
        assert h.xo.requests["snapshot"] == 0 and h.xo.requests["get_vm"] == 1


async def test_a_burst_vm_without_an_address_yet_is_asked_of_xo() -> None:
    async with controllers_world() as h:
        names = await _joining(h, 20, with_address=False)
        await h.clock.advance(0.001)
        assert h.xo.requests["get_vm"] == len(names)  # the snapshot could not answer
        assert all(not h.nodes.nodes[n].has_taint(L.UNINITIALIZED_TAINT_KEY) for n in names)


async def test_a_burst_snapshot_is_never_reused_once_stale() -> None:
    async with controllers_world() as h:
        await _joining(h, 20)
        await h.clock.advance(0.001)
        taken = h.container.burst_snapshots().taken
        await h.clock.advance(60)
        h.xo.add_vm(vm(id="11110000-c0e8-721c-45ec-f11276377030", name_label="late"))
        await h.clock.settle()
        h.xo.requests.clear()
        h.nodes.create(node("late", system_uuid="11110000-c0e8-721c-45ec-f11276377030"))
        await h.clock.advance(0.001)
        assert h.container.burst_snapshots().taken == taken
        assert h.xo.requests["get_vm"] == 1


async def test_a_burst_the_workers_keep_up_with_still_shares_a_snapshot() -> None:
    async with controllers_world() as h:
        ids = [f"2222{i:04d}-c0e8-721c-45ec-f11276377030" for i in range(100)]
        for i, vm_id in enumerate(ids):
            h.xo.add_vm(vm(id=vm_id, name_label=f"k-{i}", main_ip_address=f"10.1.8.{i}"))
        await h.clock.settle()
        h.xo.requests.clear()
        for i, vm_id in enumerate(ids):  # one at a time: the queue never holds two
            h.nodes.create(node(f"k-{i}", system_uuid=vm_id))
            await h.clock.advance(0.05)
        assert all(
            not h.nodes.nodes[f"k-{i}"].has_taint(L.UNINITIALIZED_TAINT_KEY) for i in range(100)
        )
        lookups = h.xo.requests["snapshot"] * 3 + h.xo.requests["get_vm"]
        assert lookups <= 0.2 * len(ids), h.xo.requests


async def test_the_label_and_address_passes_share_one_snapshot_each_period() -> None:
    async with controllers_world() as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.xo.requests.clear()
        for _ in range(5):
            await h.clock.advance(300)  # --node-status-update-frequency
        assert h.xo.requests["snapshot"] == 5, h.xo.requests
        h.xo.migrate_vm(VM_1, host_id=HOST_2)
        await h.clock.advance(300)
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2


async def test_xo_failing_when_the_writer_checks_its_host_leaves_the_node_followed() -> None:
    """Review s9b G2: XO fails as a label write lands, before its writer compares the
    host it used (a cache miss asks XO): the pass goes on with the other nodes, and
    the node is followed (synced again), not dropped."""
    lc = World(ONE_HOST)
    for i in range(2):
        lc.add_registered(f"n{i}", vm_uuid(i))
    for name in lc.nodes.nodes:  # labels to write again
        lc.nodes.nodes[name] = replace(lc.nodes.nodes[name], labels={})
    write = lc.nodes.update
    writes: list[str] = []

    async def then_xo_down(*, node: Node, change: NodeChange) -> Node:
        written = await write(node=node, change=change)
        writes.append(node.name)
        lc.xo.fail_with = InventoryError("XO unreachable")
        return written

    lc.nodes.update = then_xo_down  # type: ignore[method-assign]
    result = await lc.label_pass()
    assert writes == ["n0", "n1"]
    assert result.failed == 2  # each followed, and XO is down for that


async def test_xo_failing_after_an_initialization_hands_its_labels_to_label_sync() -> None:
    lc = World(ONE_HOST)
    lc.xo.add_vm(vm())
    lc.nodes.create(node())
    write = lc.nodes.update

    async def then_xo_down(*, node: Node, change: NodeChange) -> Node:
        written = await write(node=node, change=change)
        lc.xo.fail_with = InventoryError("XO unreachable")
        return written

    lc.nodes.update = then_xo_down  # type: ignore[method-assign]
    result = await lc.registration.sync(name="worker-1")
    assert result.outcome is Outcome.INITIALIZED and result.labels_overtaken
