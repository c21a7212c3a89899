"""The controllers end to end on the in-memory adapters and a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from adapters.testing.memory import (
    FakeClock,
    InMemoryEventRecorder,
    InMemoryInventory,
    InMemoryNodeStore,
)
from application.manager import LeaderGate
from domain import labels as L
from domain.errors import InventoryError
from domain.model import Readiness
from domain.options import CCMOptions, DeletionOptions, TopologyOptions, ZoneSource
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import in_memory_container

from .factories import HOST_1, HOST_2, VM_1, host, node, pool, vm


class Harness:
    def __init__(self, **settings: object) -> None:
        self.container = in_memory_container(Settings(leader_elect=False, **settings))  # type: ignore[arg-type]
        # Swapped: time, and the deletion confirmation (immediate here).
        self.clock = FakeClock()
        self.container.clock.override(self.clock)
        self.container.options.override(CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
        # The container's own in-memory adapters, driven and inspected by the tests.
        self.xo: InMemoryInventory = self.container.inventory()
        self.nodes: InMemoryNodeStore = self.container.nodes()
        self.events: InMemoryEventRecorder = self.container.events()
        self.xo.add_pool(pool())
        self.xo.add_host(host())
        self.xo.add_host(host(HOST_2, "xcp-host-2"))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        gate: LeaderGate = self.container.gate()
        self.task = asyncio.create_task(gate.run(self.container.runnables()))
        await self.clock.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_new_node_is_initialized_from_the_watch() -> None:
    async with Harness() as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        assert not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)


async def test_node_whose_vm_appears_later_is_initialized_by_the_change_event() -> None:
    async with Harness() as h:
        h.nodes.create(node())
        await h.clock.advance(0.001)
        assert h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)
        h.xo.add_vm(vm())  # XO announces it; no need to wait for the backoff
        await h.clock.settle()
        assert not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)


async def test_xo_outage_backs_off_then_recovers() -> None:
    async with Harness() as h:
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
    async with Harness() as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.xo.migrate_vm(VM_1, host_id=HOST_2)
        await h.clock.settle()  # no time passes: the event did it, not the 5-minute loop
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2
        assert "NodeZoneChanged" in h.events.reasons()


async def test_a_retagged_host_moves_the_zone_through_the_change_stream() -> None:
    h = Harness()
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


async def test_periodic_label_sync_catches_up_without_events() -> None:
    async with Harness(node_status_update_frequency=300.0) as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.xo.vms[VM_1] = replace(h.xo.vms[VM_1], container=HOST_2)  # silently: no event
        await h.clock.advance(299)
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] != HOST_2
        await h.clock.advance(2)
        assert h.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2


async def test_removed_vm_triggers_an_immediate_lifecycle_check() -> None:
    async with Harness(node_monitor_period=3600.0) as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(0.001)
        h.nodes.set_readiness("worker-1", Readiness.FALSE)
        h.xo.delete_vm(VM_1)
        await h.clock.settle()
        assert "worker-1" not in h.nodes.nodes


async def test_pool_disconnect_storm_deletes_nothing() -> None:
    async with Harness() as h:
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
    async with Harness(controllers=controllers) as h:
        h.xo.add_vm(vm())
        h.nodes.create(node())
        await h.clock.advance(1)
        assert (not h.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)) is initialized


async def _joining(h: Harness, count: int, *, with_address: bool = True) -> list[str]:
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
    async with Harness() as h:
        names = await _joining(h, 200)
        await h.clock.advance(0.001)
        assert all(not h.nodes.nodes[n].has_taint(L.UNINITIALIZED_TAINT_KEY) for n in names)
        lookups = h.xo.requests["snapshot"] * 3 + h.xo.requests["get_vm"]
        assert h.xo.requests["snapshot"] >= 1
        assert lookups <= 0.1 * len(names), h.xo.requests


async def test_a_node_alone_is_looked_up_by_id_not_by_snapshot() -> None:
    async with Harness() as h:
        await _joining(h, 1)
        await h.clock.advance(0.001)
        assert h.xo.requests["snapshot"] == 0 and h.xo.requests["get_vm"] == 1


async def test_a_burst_vm_without_an_address_yet_is_asked_of_xo() -> None:
    async with Harness() as h:
        names = await _joining(h, 20, with_address=False)
        await h.clock.advance(0.001)
        assert h.xo.requests["get_vm"] == len(names)  # the snapshot could not answer
        assert all(not h.nodes.nodes[n].has_taint(L.UNINITIALIZED_TAINT_KEY) for n in names)


async def test_a_burst_snapshot_is_never_reused_once_stale() -> None:
    async with Harness() as h:
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
    async with Harness() as h:
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
    async with Harness() as h:
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
