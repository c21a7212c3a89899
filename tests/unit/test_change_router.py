"""The change router's index from VM id to Node (issue 13, case 7): O(1) per XO
event, kept by the Node store's watch and removals, never stale when acted on."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from adapters.memory import InMemoryInventory, InMemoryNodeStore, RecordingPokes
from application.change_router import ChangeRouter
from application.node_index import NodeIndex
from domain import labels as L
from domain.freshness import Freshness
from domain.model import ChangeKind, Node, PlacementChange, VMChange

from .factories import (
    HOST_1,
    HOST_2,
    HOST_3,
    POOL_A,
    UNINITIALIZED,
    VM_1,
    VM_2,
    host,
    node,
    pool,
    vm,
)


def _pid(vm_id: str) -> str:
    return f"xenorchestra://{POOL_A}/{vm_id}"


class Router:
    def __init__(self) -> None:
        self.nodes = InMemoryNodeStore()
        self.pokes = RecordingPokes()
        self.poked = self.pokes.poked
        self.router = ChangeRouter(
            inventory=InMemoryInventory(), nodes=self.nodes, pokes=self.pokes
        )

    async def __aenter__(self) -> Router:
        self.task = asyncio.create_task(self.router.run())
        await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.mark.parametrize(
    ("nodes", "vm_id", "names"),
    [
        pytest.param([node("a", provider_id=_pid(VM_1))], VM_1, ["a"], id="by-provider-id"),
        pytest.param([node("a", provider_id=_pid(VM_1))], VM_2, [], id="another-vm"),
        pytest.param(
            [node("w", provider_id="", system_uuid=VM_1, taints=(UNINITIALIZED,))],
            VM_1,
            ["w"],
            id="waiting-by-system-uuid",
        ),
        pytest.param([node("bad", provider_id="xenorchestra://nope")], VM_1, [], id="bad-pid"),
        pytest.param(
            [node("a", provider_id=_pid(VM_1)), node("b", provider_id=_pid(VM_1))],
            VM_1,
            ["a", "b"],
            id="two-nodes-one-vm",
        ),
    ],
)
def test_the_index_names_the_nodes_a_vm_may_be(
    nodes: list[Node], vm_id: str, names: list[str]
) -> None:
    index = NodeIndex()
    for n in nodes:
        index.put(n)
    assert index.names(vm_id) == names


def test_the_index_follows_a_change_and_a_deletion() -> None:
    index = NodeIndex()
    waiting = node("w", provider_id="", system_uuid=VM_1, taints=(UNINITIALIZED,))
    index.put(waiting)
    index.put(replace(waiting, provider_id=_pid(VM_2), taints=()))  # initialized: another VM
    assert index.names(VM_1) == [] and index.names(VM_2) == ["w"]
    index.drop("w")
    assert index.names(VM_2) == [] and len(index) == 0


def test_a_node_deleted_and_created_again_is_indexed_again() -> None:
    """The index skips a change that keeps a node's providerID and systemUUID: one
    deleted and then created again with both unchanged must still be indexed."""
    index = NodeIndex()
    ready = node("a", provider_id=_pid(VM_1), taints=())
    index.put(ready)
    index.put(replace(ready, labels={"any": "change"}))
    index.drop("a")
    index.put(ready)
    assert index.names(VM_1) == ["a"] and len(index) == 1


async def test_events_poke_the_indexed_node() -> None:
    async with Router() as r:
        r.nodes.create(node("a", provider_id=_pid(VM_1), taints=()))
        r.nodes.create(node("w", provider_id="", system_uuid=VM_2, taints=(UNINITIALIZED,)))
        await asyncio.sleep(0.01)
        await r.router.handle(VMChange(ChangeKind.UPDATED, vm(id=VM_1)))
        await r.router.handle(VMChange(ChangeKind.REMOVED, vm(id=VM_1)))
        await r.router.handle(VMChange(ChangeKind.ADDED, vm(id=VM_2)))
    assert r.poked == [("changed", "a"), ("removed", "a"), ("appeared", "w")]


async def test_a_node_deleted_by_someone_else_leaves_the_index() -> None:
    async with Router() as r:
        for i in range(3):
            r.nodes.create(node(f"n{i}", provider_id=_pid(f"{i:08x}-0000-4000-8000-0000000000aa")))
        await asyncio.sleep(0.01)
        assert len(r.router.index) == 3
        for i in range(3):
            r.nodes.remove(f"n{i}")  # kubectl delete node: no XO event follows
        await asyncio.sleep(0.01)
        assert len(r.router.index) == 0


async def test_a_node_created_again_while_its_removal_waits_stays_indexed() -> None:
    """Changes and removals come on two streams: the new Node of a name can be indexed
    before the removal of the old one is read, which must not unindex the new one
    (its VM's XO events would then miss it until its next change)."""
    async with Router() as r:
        r.nodes.create(node("c", provider_id=_pid(VM_2), taints=()))
        r.nodes.create(node("a", provider_id=_pid(VM_1), taints=()))
        await asyncio.sleep(0.01)
        r.nodes.touch("c", labels={"any": "change"})  # wakes the change stream first
        r.nodes.remove("a")
        again = "00000000-0000-4000-8000-0000000000bb"
        r.nodes.create(node("a", provider_id="", system_uuid=again, taints=(UNINITIALIZED,)))
        await asyncio.sleep(0.01)
        assert r.router.index.names(again) == ["a"]
        assert r.router.index.names(VM_1) == []


async def test_nodes_present_before_the_router_starts_are_indexed() -> None:
    r = Router()
    r.nodes.create(node("a", provider_id=_pid(VM_1)))
    async with r:
        await r.router.handle(VMChange(ChangeKind.REMOVED, vm(id=VM_1)))
    assert r.poked == [("removed", "a")]


async def test_a_stale_entry_is_checked_against_the_store_before_acting() -> None:
    r = Router()  # not running: nothing keeps the index
    r.nodes.create(node("a", provider_id=_pid(VM_1)))
    await r.router.index_all()
    del r.nodes.nodes["a"]
    await r.router.handle(VMChange(ChangeKind.REMOVED, vm(id=VM_1)))
    assert r.poked == [] and len(r.router.index) == 0


async def test_a_host_or_pool_change_pokes_the_nodes_placed_there_and_announces_their_vms() -> None:
    freshness = Freshness()
    pokes = RecordingPokes()
    nodes = InMemoryNodeStore()
    router = ChangeRouter(
        inventory=InMemoryInventory(), nodes=nodes, pokes=pokes, freshness=freshness
    )
    on_1 = {L.HOST_ID: HOST_1, L.POOL_ID: POOL_A}
    nodes.create(node("a", provider_id=_pid(VM_1), taints=(), labels=on_1))
    nodes.create(node("b", provider_id=_pid(VM_2), taints=(), labels={L.HOST_ID: HOST_2}))
    nodes.create(node("w", provider_id="", system_uuid=VM_2, labels=on_1))  # still waiting
    before = freshness.finish(freshness.begin())  # an answer asked for before

    await router.handle(PlacementChange(host=host(HOST_1)))
    await router.handle(PlacementChange(pool=pool(POOL_A)))
    await router.handle(PlacementChange(host=host(HOST_3)))

    assert pokes.poked == [("changed", "a"), ("changed", "a")]
    assert not freshness.admits(VM_1, before)
    assert freshness.admits(VM_2, before)
