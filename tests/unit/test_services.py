"""The three services on the in-memory adapters."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from domain import labels as L
from domain.errors import (
    AmbiguousVMError,
    ConflictError,
    InventoryError,
    NodeGoneError,
    VMNotFoundError,
)
from domain.model import AddressType, Node, NodeAddress, NodeChange, PowerState, Readiness
from domain.options import CCMOptions, DeletionOptions
from domain.policies.lifecycle import LifecycleAction
from domain.policies.system_uuid import swap_little_endian
from domain.ports import NodeStore
from domain.services.node_updates import update_on_conflict_retry
from domain.services.registration import Outcome, RetryLater
from tests.world import World

from .factories import GIB, HOST_1, HOST_2, HOST_3, POOL_A, POOL_B, VM_1, VM_2, host, node, vm


async def test_registration_initializes_a_tainted_node(world: World) -> None:
    world.xo.add_vm(vm())
    world.nodes.create(node())
    await world.clock.advance(42.0)
    result = await world.registration.sync(name="worker-1")
    n = world.nodes.nodes["worker-1"]
    assert result.outcome is Outcome.INITIALIZED
    assert result.taint_removal_delay == pytest.approx(42.0)
    assert result.initial_sync_delay == pytest.approx(42.0)  # no time passes in the world
    assert n.provider_id == f"xenorchestra://{POOL_A}/{VM_1}"
    assert not n.has_taint(L.UNINITIALIZED_TAINT_KEY)
    assert n.labels[L.ZONE] == HOST_1
    assert n.labels[L.INSTANCE_TYPE_BETA] == "2vCPU-4GB"
    assert n.addresses == (
        NodeAddress(AddressType.EXTERNAL_IP, "10.1.6.166"),
        NodeAddress(AddressType.HOSTNAME, "worker-1"),
    )
    assert world.events.reasons() == ["Synced"]
    assert world.events.events[0].source == "cloud-node-controller"
    assert world.nodes.writes == {"update": 1, "status": 1}


async def test_registration_finds_a_little_endian_system_uuid(world: World) -> None:
    world.xo.add_vm(vm())
    n = await world.join(system_uuid=swap_little_endian(VM_1).upper())
    assert n.provider_id.endswith(VM_1)


async def test_registration_by_providerid_with_empty_pool(world: World) -> None:
    world.xo.add_vm(vm())
    n = await world.join(provider_id=f"xenorchestra:///{VM_1}", system_uuid="")
    assert n.provider_id == f"xenorchestra:///{VM_1}"  # never rewritten
    assert n.labels[L.REGION] == POOL_A


async def test_registration_unknown_vm_is_retried_not_initialized(world: World) -> None:
    world.nodes.create(node())
    with pytest.raises(VMNotFoundError):
        await world.registration.sync(name="worker-1")
    assert world.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)
    assert sum(world.nodes.writes.values()) == 0


async def test_registration_provided_ip_mismatch_requeues_and_writes_nothing(world: World) -> None:
    world.xo.add_vm(vm())
    world.nodes.create(node(annotations={L.PROVIDED_NODE_IP: "10.9.9.9"}))
    with pytest.raises(RetryLater, match=r"10\.9\.9\.9"):
        await world.registration.sync(name="worker-1")
    assert sum(world.nodes.writes.values()) == 0


async def test_registration_by_name_when_enabled_and_unambiguous() -> None:
    world = World(options=CCMOptions(match_by_name=True))
    svc = world.registration
    world.xo.add_vm(vm())
    world.nodes.create(node(system_uuid=""))
    assert (await svc.sync(name="worker-1")).outcome is Outcome.INITIALIZED
    world.xo.add_vm(vm(id=VM_2))  # a second VM of the same name
    world.nodes.create(node("worker-1b", system_uuid=""))
    world.xo.update_vm(VM_2, name_label="worker-1b")
    world.xo.add_vm(vm(id="0" * 8 + "-0000-0000-0000-" + "0" * 12, name_label="worker-1b"))
    with pytest.raises(AmbiguousVMError):
        await svc.sync(name="worker-1b")


async def test_registration_foreign_providerid_only_removes_taint(world: World) -> None:
    n = await world.join(provider_id="aws:///eu-west-1a/i-0123")
    assert not n.has_taint(L.UNINITIALIZED_TAINT_KEY)
    assert L.ZONE not in n.labels
    assert n.provider_id == "aws:///eu-west-1a/i-0123"


async def test_registration_retries_on_conflict_and_keeps_the_other_writers_labels(
    world: World,
) -> None:
    world.xo.add_vm(vm())
    world.nodes.create(node())
    stale = world.nodes.nodes["worker-1"]
    world.nodes.touch("worker-1", labels={"team": "blue"})  # a concurrent writer
    real_get = world.nodes.get

    async def get_returning_stale_once(*, name: str):  # type: ignore[no-untyped-def]
        world.nodes.get = real_get  # type: ignore[method-assign]
        return stale

    world.nodes.get = get_returning_stale_once  # type: ignore[method-assign]
    await world.registration.sync(name="worker-1")
    n = world.nodes.nodes["worker-1"]
    assert n.labels["team"] == "blue"
    assert n.labels[L.ZONE] == HOST_1


class _RecreatedAfterTheRead:
    """A node store whose Node was deleted and created again under its name after the
    caller read it: the write from the old copy conflicts, and the re-read finds the
    new Node (another uid), as a store that refreshes after a conflict does."""

    def __init__(self, successor: Node) -> None:
        self.successor = successor
        self.written: list[str] = []

    async def update(self, *, node: Node, change: NodeChange) -> Node:
        if node.uid != self.successor.uid:
            raise ConflictError(f"node {node.name}: the object has been modified")
        self.written.append(node.uid)
        return node

    async def get(self, *, name: str) -> Node | None:
        return self.successor


async def test_a_plan_is_never_applied_to_a_node_created_again_under_its_name() -> None:
    old = node(uid="uid-old", resource_version="7")
    store = _RecreatedAfterTheRead(node(uid="uid-new", resource_version="9"))
    planned_for: list[str] = []

    def plan(current: Node) -> NodeChange:
        planned_for.append(current.uid)
        return NodeChange(provider_id="xenorchestra://pool-a/vm-of-the-old-node")

    with pytest.raises(NodeGoneError, match="uid-old"):
        await update_on_conflict_retry(cast(NodeStore, store), old, plan)
    assert planned_for == ["uid-old"] and store.written == []


async def test_registration_of_initialized_node_copies_beta_labels_without_xo(world: World) -> None:
    world.xo.fail_with = InventoryError("XO down")
    world.nodes.create(node(taints=(), labels={L.ZONE_BETA: HOST_1}))
    result = await world.registration.sync(name="worker-1")
    assert result.outcome is Outcome.RECONCILED
    assert world.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_1
    assert sum(world.xo.requests.values()) == 0


async def test_address_sync_patches_only_changes_from_one_snapshot(world: World) -> None:
    world.xo.add_vm(vm())
    world.xo.add_vm(vm(id=VM_2, name_label="worker-2", main_ip_address="10.0.0.2"))
    await world.join()
    await world.join("worker-2", system_uuid=VM_2)
    world.xo.requests.clear()
    writes = sum(world.nodes.writes.values())
    assert (await world.address_pass()).patched == 0
    assert sum(world.nodes.writes.values()) == writes
    world.xo.update_vm(VM_2, main_ip_address="10.0.0.3")
    assert (await world.address_pass()).patched == 1
    assert (
        NodeAddress(AddressType.EXTERNAL_IP, "10.0.0.3") in world.nodes.nodes["worker-2"].addresses
    )
    assert world.xo.requests == {"snapshot": 2}


# -- lifecycle ---------------------------------------------------------------
async def _not_ready(world: World, name: str = "worker-1") -> None:
    world.nodes.set_readiness(name, Readiness.FALSE)


async def test_lifecycle_deletes_node_whose_vm_is_deleted(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    await _not_ready(world)
    world.xo.delete_vm(VM_1)
    result = await world.lifecycle.run_pass()
    assert result.actions[LifecycleAction.DELETE_NODE] == 1
    assert "worker-1" not in world.nodes.nodes
    assert world.events.reasons()[-1] == "DeletingNode"


async def test_lifecycle_keeps_node_when_pool_disconnected(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    await _not_ready(world)
    world.xo.disconnect_pool(POOL_A)
    await world.lifecycle.run_pass()
    assert "worker-1" in world.nodes.nodes


async def test_lifecycle_keeps_node_on_lookup_error(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    await _not_ready(world)
    world.xo.fail_with = InventoryError("connection refused")
    await world.lifecycle.run_pass()
    assert "worker-1" in world.nodes.nodes


async def test_lifecycle_empty_pool_providerid_uses_region_label_to_confirm(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join(provider_id=f"xenorchestra:///{VM_1}")
    await _not_ready(world)
    world.xo.disconnect_pool(POOL_A)
    await world.lifecycle.run_pass()
    assert "worker-1" in world.nodes.nodes
    world.xo.reconnect_pool(POOL_A)
    world.xo.delete_vm(VM_1)
    await world.lifecycle.run_pass()
    assert "worker-1" not in world.nodes.nodes


async def test_lifecycle_without_any_pool_hint_never_deletes(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join(provider_id=f"xenorchestra:///{VM_1}")
    world.nodes.touch("worker-1", labels={}, readiness=Readiness.FALSE)
    world.xo.delete_vm(VM_1)
    await world.lifecycle.run_pass()
    assert "worker-1" in world.nodes.nodes


async def test_lifecycle_keeps_a_moved_node_when_xo_loses_its_new_pool(world: World) -> None:
    # Registered in pool A (the providerID keeps it), label sync follows the VM to
    # pool B; XO then loses pool B while A still answers.
    world.xo.add_vm(vm())
    await world.join()
    world.xo.migrate_vm(VM_1, host_id=HOST_3)
    await world.label_pass()
    assert world.nodes.nodes["worker-1"].labels[L.REGION] == POOL_B
    await _not_ready(world)
    world.xo.disconnect_pool(POOL_B)
    result = await world.lifecycle.run_pass()
    assert result.actions[LifecycleAction.KEEP_UNCERTAIN] == 1
    assert "worker-1" in world.nodes.nodes
    world.xo.reconnect_pool(POOL_B)
    world.xo.delete_vm(VM_1)
    await world.lifecycle.run_pass()
    assert "worker-1" not in world.nodes.nodes


async def test_lifecycle_keeps_a_node_whose_provider_id_names_another_pool(world: World) -> None:
    # kubelet --provider-id names pool B (known to XO); the VM lives in pool A.
    world.xo.add_vm(vm())
    await world.join(provider_id=f"xenorchestra://{POOL_B}/{VM_1}")
    assert world.nodes.nodes["worker-1"].labels[L.REGION] == POOL_A
    await _not_ready(world)
    world.xo.disconnect_pool(POOL_A)
    await world.lifecycle.run_pass()
    assert "worker-1" in world.nodes.nodes


async def test_lifecycle_shutdown_taint_added_then_removed_when_ready(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    await _not_ready(world)
    world.xo.stop_vm(VM_1)
    await world.lifecycle.run_pass()
    assert world.nodes.nodes["worker-1"].has_taint(L.SHUTDOWN_TAINT.key)
    world.nodes.set_readiness("worker-1", Readiness.TRUE)
    await world.lifecycle.run_pass()
    assert not world.nodes.nodes["worker-1"].has_taint(L.SHUTDOWN_TAINT.key)


async def test_lifecycle_ready_nodes_cost_no_xo_request(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    world.xo.requests.clear()
    await world.lifecycle.run_pass()
    assert sum(world.xo.requests.values()) == 0


async def test_lifecycle_pass_checks_no_ready_node_at_rest(world: World) -> None:
    for i in range(50):
        world.xo.add_vm(vm(id=f"0000{i:04d}-c0e8-721c-45ec-f11276377030", name_label=f"w{i}"))
        await world.join(f"w{i}", system_uuid=f"0000{i:04d}-c0e8-721c-45ec-f11276377030")
    result = await world.lifecycle.run_pass()
    assert sum(result.actions.values()) == 0, "a Ready node without our taints is not checked"
    await _not_ready(world, "w7")
    result = await world.lifecycle.run_pass()
    assert dict(result.actions) == {LifecycleAction.NOTHING: 1}  # only the NotReady one


async def test_lifecycle_keeps_visiting_a_recovered_node_until_its_sighting_is_forgotten() -> None:
    """A VM seen gone once, then the node Ready again: the next pass must still look at
    it, or the old sighting would let a later absence delete it without confirmation."""
    world = World(options=CCMOptions(deletion=DeletionOptions(confirm_delay=10)))
    world.xo.add_vm(vm())
    await world.join()
    await _not_ready(world)
    world.xo.delete_vm(VM_1)
    result = await world.lifecycle.run_pass()
    assert result.actions[LifecycleAction.WAIT_CONFIRMATION] == 1
    world.nodes.set_readiness("worker-1", Readiness.TRUE)  # it was an XO hiccup
    result = await world.lifecycle.run_pass()
    assert result.actions[LifecycleAction.NOTHING] == 1
    await world.clock.advance(30)
    await _not_ready(world)
    result = await world.lifecycle.run_pass()  # a new sighting: confirm again, never delete
    assert result.actions[LifecycleAction.WAIT_CONFIRMATION] == 1
    assert "worker-1" in world.nodes.nodes
    world.nodes.set_readiness("worker-1", Readiness.TRUE)
    await world.lifecycle.run_pass()
    assert sum((await world.lifecycle.run_pass()).actions.values()) == 0  # forgotten: at rest


async def test_lifecycle_failed_delete_emits_warning_and_keeps_going(world: World) -> None:
    from domain.errors import NodeStoreError

    world.xo.add_vm(vm())
    await world.join()
    await _not_ready(world)
    world.xo.delete_vm(VM_1)
    world.nodes.fail_writes = NodeStoreError("apiserver down")
    await world.lifecycle.run_pass()
    assert world.events.reasons()[-2:] == ["DeletingNode", "DeletingNodeFailed"]


# -- label sync ----------------------------------------------------------------
async def test_label_sync_follows_migration_resize_and_pool_move(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    world.xo.migrate_vm(VM_1, host_id=HOST_2)
    assert (await world.label_pass()).updated == 1
    n = world.nodes.nodes["worker-1"]
    assert (n.labels[L.ZONE], n.labels[L.ORIGINAL_HOST_ID]) == (HOST_2, HOST_1)
    world.xo.update_vm(VM_1, cpus=8, memory_bytes=16 * GIB)
    await world.label_pass()
    assert world.nodes.nodes["worker-1"].labels[L.INSTANCE_TYPE] == "8vCPU-16GB"
    world.xo.migrate_vm(VM_1, host_id=HOST_3)
    await world.label_pass()
    n = world.nodes.nodes["worker-1"]
    assert (n.labels[L.REGION], n.labels[L.ORIGINAL_POOL_ID]) == (POOL_B, POOL_A)
    assert n.labels[L.ORIGINAL_HOST_ID] == HOST_1
    assert n.provider_id == f"xenorchestra://{POOL_A}/{VM_1}"  # never rewritten
    assert world.events.reasons() == [
        "Synced",
        "NodeZoneChanged",
        "NodeInstanceTypeHasChanged",
        "NodeZoneChanged",
        "NodeRegionChanged",
    ]


async def test_label_sync_pass_that_changes_nothing_writes_nothing(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    before = sum(world.nodes.writes.values())
    assert (await world.label_pass()).updated == 0
    assert sum(world.nodes.writes.values()) == before


async def test_label_sync_halted_vm_keeps_host_labels(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    world.xo.stop_vm(VM_1)
    await world.label_pass()
    n = world.nodes.nodes["worker-1"]
    assert n.labels[L.ZONE] == HOST_1
    assert n.labels[L.HOST_ID] == HOST_1


async def test_label_sync_one_node_on_trigger(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    world.xo.update_vm(VM_1, name_label="renamed")
    assert await world.label_sync.sync_node(name="worker-1") is True
    assert world.nodes.nodes["worker-1"].labels[L.VM_NAME_LABEL] == "renamed"
    assert await world.label_sync.sync_node(name="worker-1") is False


async def test_providerid_is_immutable_in_the_store(world: World) -> None:
    from domain.errors import InvalidNodeError

    world.xo.add_vm(vm())
    n = await world.join()
    with pytest.raises(InvalidNodeError):
        await world.nodes.update(
            node=n, change=NodeChange(provider_id=f"xenorchestra://{POOL_B}/{VM_1}")
        )


async def test_halted_vm_registration_has_no_zone(world: World) -> None:
    world.xo.add_vm(replace(vm(), power_state=PowerState.HALTED, container=POOL_A))
    n = await world.join()
    assert L.ZONE not in n.labels
    assert n.labels[L.REGION] == POOL_A


async def test_a_label_pass_over_settled_nodes_plans_nothing_yet_follows_every_change(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import domain.services.label_sync as label_sync

    planned: list[str] = []
    original = label_sync.instance_metadata

    def counting(**kwargs: object):  # type: ignore[no-untyped-def]
        planned.append(kwargs["node"].name)  # type: ignore[attr-defined]
        return original(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(label_sync, "instance_metadata", counting)
    world.xo.add_vm(vm())
    world.xo.add_vm(vm(id=VM_2, name_label="worker-2"))
    await world.join()
    await world.join("worker-2", system_uuid=VM_2)
    await world.label_pass()
    planned.clear()
    await world.label_pass()
    assert planned == [], "nothing changed on either side: nothing is recomputed"

    world.xo.migrate_vm(VM_1, host_id=HOST_2)  # the VM changed
    await world.label_pass()
    assert planned == ["worker-1"]
    assert world.nodes.nodes["worker-1"].labels[L.ZONE] == HOST_2
    planned.clear()
    world.xo.add_host(host(HOST_2, "renamed-host"))  # the host changed
    await world.label_pass()
    assert planned == ["worker-1"]
    assert world.nodes.nodes["worker-1"].labels[L.HOST_NAME_LABEL] == "renamed-host"
    await world.label_pass()  # its own write changed the node: checked once more
    planned.clear()
    labels = dict(world.nodes.nodes["worker-2"].labels)
    labels.pop(L.ZONE)
    world.nodes.nodes["worker-2"] = replace(world.nodes.nodes["worker-2"], labels=labels)
    await world.label_pass()  # the node changed
    assert planned == ["worker-2"]
    assert world.nodes.nodes["worker-2"].labels[L.ZONE] == HOST_1


async def test_an_address_pass_over_settled_nodes_still_follows_a_new_ip(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    await world.address_pass()
    assert (await world.address_pass()).patched == 0
    world.xo.update_vm(VM_1, main_ip_address="10.1.6.200")
    assert (await world.address_pass()).patched == 1
    assert (
        NodeAddress(AddressType.EXTERNAL_IP, "10.1.6.200")
        in world.nodes.nodes["worker-1"].addresses
    )
    assert (await world.address_pass()).patched == 0


async def test_a_failed_host_or_pool_lookup_never_overwrites_a_known_name(world: World) -> None:
    world.xo.add_vm(vm())
    await world.join()
    n = world.nodes.nodes["worker-1"]
    assert (n.labels[L.HOST_NAME_LABEL], n.labels[L.POOL_NAME_LABEL]) == ("xcp-host-1", "Pool-A")
    # XO cannot answer for the host and the pool this time (dropped from its caches)...
    del world.xo.hosts[HOST_1]
    del world.xo.pools[POOL_A]
    world.xo.update_vm(VM_1, name_label="renamed")
    assert await world.label_sync.sync_node(name="worker-1") is True
    await world.label_pass()
    n = world.nodes.nodes["worker-1"]
    assert n.labels[L.VM_NAME_LABEL] == "renamed"
    assert (n.labels[L.HOST_NAME_LABEL], n.labels[L.POOL_NAME_LABEL]) == ("xcp-host-1", "Pool-A")
    # ...but a move to a host it cannot name leaves no wrong name behind.
    world.xo.migrate_vm(VM_1, host_id=HOST_2)
    del world.xo.hosts[HOST_2]
    await world.label_pass()
    n = world.nodes.nodes["worker-1"]
    assert (n.labels[L.HOST_ID], n.labels[L.HOST_NAME_LABEL]) == (HOST_2, "unknown")


@pytest.mark.parametrize(
    ("provided", "reported"),
    [
        pytest.param("2001:DB8::5", "2001:db8::5", id="upper-case"),
        pytest.param("2001:db8:0:0:0:0:0:5", "2001:db8::5", id="uncompressed"),
        pytest.param("2001:db8::5", "2001:0db8:0000::0005", id="zero-padded-report"),
        pytest.param(" 10.1.6.166", "10.1.6.166", id="blank"),
    ],
)
async def test_a_provided_node_ip_matches_however_it_is_written(
    world: World, provided: str, reported: str
) -> None:
    world.xo.add_vm(vm(main_ip_address=None, addresses={"0/ipv6/0": reported}))
    n = await world.join(annotations={L.PROVIDED_NODE_IP: provided})
    assert not n.has_taint(L.UNINITIALIZED_TAINT_KEY)


async def test_addresses_are_written_even_when_xo_announces_a_change_during_initialization(
    world: World,
) -> None:
    # The guest tools report the VM's address just as the node is initialized: the
    # change event overtakes the answer the labels came from. The addresses must still
    # be written (from a newer answer), not left to the next address pass.
    ledger = world.container.freshness()
    registration = world.registration
    world.xo.add_vm(vm(main_ip_address=None, addresses={}))
    world.nodes.create(node())
    real_update = world.nodes.update

    async def update_while_xo_changes(**kw):  # type: ignore[no-untyped-def]
        written = await real_update(**kw)
        world.xo.update_vm(VM_1, main_ip_address="10.1.6.166", addresses={"0/ipv4/0": "10.1.6.166"})
        ledger.announce(VM_1)  # what the change router does on the event
        return written

    world.nodes.update = update_while_xo_changes  # type: ignore[method-assign]
    assert (await registration.sync(name="worker-1")).outcome is Outcome.INITIALIZED
    assert world.nodes.nodes["worker-1"].addresses == (
        NodeAddress(AddressType.EXTERNAL_IP, "10.1.6.166"),
        NodeAddress(AddressType.HOSTNAME, "worker-1"),
    )
