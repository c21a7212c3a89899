"""The NodeStore port's contract, held against the in-memory store and the Kubernetes one.

Every unit test of the services trusts InMemoryNodeStore to behave like the
API server where the services could notice: these are the places.
"""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import ConflictError, InvalidNodeError, NodeGoneError
from domain.model import AddressType, Node, NodeAddress, NodeChange, Taint, TaintEffect
from tests.contract.port_drivers import NodeWorld, unique
from tests.integration.waiting import until
from tests.unit.factories import UNINITIALIZED, VM_1

PID_A = "xenorchestra://b7569d99-30f8-178a-7d94-801de3e29b5b/f07ab729-c0e8-721c-45ec-f11276377030"
PID_B = "xenorchestra://b7569d99-30f8-178a-7d94-801de3e29b5b/a07ab729-c0e8-721c-45ec-f11276377031"


async def test_a_registered_node_is_read_back_by_name_and_listed(nodes: NodeWorld) -> None:
    name = unique("reg")
    registered = await nodes.register(name, system_uuid=VM_1, labels={"team": "a"})

    node = await nodes.store.get(name=name)

    assert node is not None and node.uid == registered.uid and node.uid
    assert node.system_uuid == VM_1
    assert node.labels["team"] == "a"
    assert node.has_taint(UNINITIALIZED.key)
    assert node.resource_version
    assert name in {n.name for n in await nodes.store.list()}
    assert await nodes.store.get(name=unique("absent")) is None


async def test_update_writes_the_whole_change_and_returns_the_new_node(nodes: NodeWorld) -> None:
    name = unique("upd")
    node = await nodes.register(name, labels={"stale": "x"})
    change = NodeChange(
        provider_id=PID_A,
        set_labels={"topology.kubernetes.io/zone": "h1"},
        remove_labels=frozenset({"stale"}),
        remove_taint_keys=frozenset({UNINITIALIZED.key}),
        add_taints=(Taint("example.com/extra", TaintEffect.PREFER_NO_SCHEDULE, "v"),),
    )

    written = await nodes.store.update(node=node, change=change)

    assert written.provider_id == PID_A
    assert written.labels["topology.kubernetes.io/zone"] == "h1"
    assert "stale" not in written.labels
    assert not written.has_taint(UNINITIALIZED.key)
    assert written.has_taint("example.com/extra")
    assert written.resource_version != node.resource_version
    assert await nodes.store.get(name=name) == written  # read back at once, no watch lag


async def test_an_update_from_a_stale_copy_conflicts_and_writes_nothing(nodes: NodeWorld) -> None:
    name = unique("stale")
    stale = await nodes.register(name)
    moved = await nodes.relabel(name, kubelet="touched")

    with pytest.raises(ConflictError):
        await nodes.store.update(node=stale, change=NodeChange(set_labels={"mine": "1"}))

    current = await nodes.store.get(name=name)
    assert current is not None and "mine" not in current.labels
    written = await nodes.store.update(node=moved, change=NodeChange(set_labels={"mine": "1"}))
    assert written.labels["kubelet"] == "touched" and written.labels["mine"] == "1"


async def test_a_provider_id_is_set_once_and_a_change_is_refused(nodes: NodeWorld) -> None:
    node = await nodes.register(unique("pid"))
    node = await nodes.store.update(node=node, change=NodeChange(provider_id=PID_A))

    with pytest.raises(InvalidNodeError, match="providerID"):
        await nodes.store.update(node=node, change=NodeChange(provider_id=PID_B))

    again = await nodes.store.get(name=node.name)
    assert again is not None and again.provider_id == PID_A


async def test_set_addresses_replaces_the_addresses(nodes: NodeWorld) -> None:
    node = await nodes.register(unique("addr"))
    wanted = (
        NodeAddress(AddressType.INTERNAL_IP, "10.0.0.9"),
        NodeAddress(AddressType.HOSTNAME, node.name),
    )

    written = await nodes.store.set_addresses(node=node, addresses=wanted)
    assert written.addresses == wanted
    shorter = await nodes.store.set_addresses(node=written, addresses=wanted[1:])

    assert shorter.addresses == wanted[1:]
    assert shorter.has_taint(UNINITIALIZED.key)  # the rest of the node is left alone


async def test_delete_honours_the_uid_and_a_second_delete_finds_nothing(nodes: NodeWorld) -> None:
    name = unique("del")
    old = await nodes.register(name)
    await nodes.remove(name)
    recreated = await nodes.register(name)
    assert recreated.uid != old.uid

    with pytest.raises(NodeGoneError):
        await nodes.store.delete(node=old)  # another Node by that name now

    current = await nodes.store.get(name=name)
    assert current is not None and current.uid == recreated.uid
    await nodes.store.delete(node=current)
    assert await nodes.store.get(name=name) is None
    with pytest.raises(NodeGoneError):
        await nodes.store.delete(node=current)


async def test_writes_to_a_deleted_node_raise_node_gone(nodes: NodeWorld) -> None:
    name = unique("gone")
    node = await nodes.register(name)
    await nodes.remove(name)

    with pytest.raises(NodeGoneError):
        await nodes.store.update(node=node, change=NodeChange(set_labels={"a": "b"}))
    with pytest.raises(NodeGoneError):
        await nodes.store.set_addresses(
            node=node, addresses=(NodeAddress(AddressType.HOSTNAME, name),)
        )


async def test_watch_yields_every_node_then_every_addition_and_change(nodes: NodeWorld) -> None:
    first = unique("first")
    await nodes.register(first)
    seen: list[Node] = []

    async def consume() -> None:
        async for node in nodes.store.watch():
            seen.append(node)

    consumer = asyncio.create_task(consume())
    try:
        await until(lambda: first in {n.name for n in seen})
        second = unique("second")
        await nodes.register(second)
        await until(lambda: second in {n.name for n in seen})
        await nodes.relabel(first, color="blue")
        await until(lambda: any(n.name == first and n.labels.get("color") == "blue" for n in seen))
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_removals_yield_a_node_someone_else_deleted(nodes: NodeWorld) -> None:
    name = unique("removed")
    registered = await nodes.register(name)
    removed: list[Node] = []

    async def consume() -> None:
        async for node in nodes.store.removals():
            removed.append(node)

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0)  # subscribed
        await nodes.remove(name)
        await until(lambda: name in {n.name for n in removed})
        assert [n.uid for n in removed if n.name == name] == [registered.uid]
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
