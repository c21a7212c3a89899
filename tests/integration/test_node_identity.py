"""A Node deleted and created again under its name (a VM rebuilt, a kubelet registering
anew) is another node: nothing read, planned or computed for the old one is written
onto it, and the cache never takes the old one back. Real kube-apiserver, the CCM's
real node store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.kubernetes import ClientSettings, KubeClient, KubernetesNodeStore, connect
from domain.errors import NodeGoneError
from domain.model import AddressType, Node, NodeAddress, NodeChange
from domain.services.node_updates import update_on_conflict_retry

from .controlplane import ControlPlane
from .kube import UNINITIALIZED, create_node, delete_node, get_node, label_node, unique
from .waiting import until

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(control_plane: ControlPlane) -> AsyncIterator[KubernetesNodeStore]:
    client = await connect(
        str(control_plane.admin_kubeconfig), settings=ClientSettings(qps=50, burst=50), name="ccm"
    )
    try:
        nodes = KubernetesNodeStore(client)
        async with nodes:
            async with asyncio.timeout(10):
                await nodes.wait_synced()
            yield nodes
    finally:
        await client.aclose()


async def cached(store: KubernetesNodeStore, name: str, uid: str | None = None) -> Node:
    """The cached copy of ``name`` once the cache holds it (with ``uid``, when given)."""
    found: list[Node] = []

    async def holds() -> bool:
        node = await store.get(name=name)
        if node is not None and (uid is None or node.uid == uid):
            found.append(node)
        return bool(found)

    await until(holds)
    return found[0]


async def reborn(kube: KubeClient, store: KubernetesNodeStore, prefix: str) -> tuple[Node, str]:
    """A Node the cache read, then deleted and created again: (the old copy, new uid)."""
    name = unique(prefix)
    await create_node(
        kube, name, system_uuid="old-vm", addresses=[{"type": "InternalIP", "address": "10.0.0.1"}]
    )
    old = await cached(store, name)
    await delete_node(kube, name)
    successor = await create_node(
        kube, name, system_uuid="new-vm", addresses=[{"type": "InternalIP", "address": "10.0.0.2"}]
    )
    return old, successor["metadata"]["uid"]


@pytest.mark.parametrize("successor_cached", [False, True])
async def test_a_plan_made_for_the_old_node_never_lands_on_the_new_one(
    kube: KubeClient, store: KubernetesNodeStore, successor_cached: bool
) -> None:
    """The write from the old copy conflicts; planning again from the copy read after the
    conflict would put the old VM's providerID and labels on the new node (whose VM may
    be another, or gone: the lifecycle controller would then delete it)."""
    old, uid = await reborn(kube, store, "plan")
    if successor_cached:
        await cached(store, old.name, uid)
    planned_for: list[str] = []

    def plan(node: Node) -> NodeChange:
        planned_for.append(node.uid)
        return NodeChange(
            provider_id="xenorchestra://pool-1/old-vm",
            set_labels={"node.kubernetes.io/instance-type": "2vCPU-4GB"},
            remove_taint_keys=frozenset({UNINITIALIZED}),
        )

    with pytest.raises(NodeGoneError):
        await update_on_conflict_retry(store, old, plan)
    assert planned_for == [old.uid]
    server = await get_node(kube, old.name)
    assert server["metadata"]["uid"] == uid
    assert "providerID" not in server["spec"]
    assert "node.kubernetes.io/instance-type" not in server["metadata"].get("labels", {})
    assert UNINITIALIZED in {taint["key"] for taint in server["spec"]["taints"]}


@pytest.mark.parametrize("successor_cached", [False, True])
async def test_addresses_computed_for_the_old_node_never_land_on_the_new_one(
    kube: KubeClient, store: KubernetesNodeStore, successor_cached: bool
) -> None:
    """The status write has no version precondition (kubelet's heartbeats would make it
    conflict all the time): the uid is its precondition."""
    old, uid = await reborn(kube, store, "addr")
    if successor_cached:
        await cached(store, old.name, uid)
    with pytest.raises(NodeGoneError):
        await store.set_addresses(
            node=old, addresses=(NodeAddress(AddressType.INTERNAL_IP, "10.0.0.99"),)
        )
    server = await get_node(kube, old.name)
    assert server["metadata"]["uid"] == uid
    assert server["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.2"}]
    assert (await cached(store, old.name, uid)).addresses == (
        NodeAddress(AddressType.INTERNAL_IP, "10.0.0.2"),
    )


async def test_a_late_answer_for_the_old_node_leaves_the_new_one_cached(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    """The answer to a write on the old Node, taken after the watch brought its deletion
    and the new Node (the loop resumed the writer late), is older than the cached Node:
    the cache keeps the new one, so nothing reads the old one back."""
    name = unique("late")
    await create_node(kube, name)
    await cached(store, name)
    answer = await label_node(kube, name, written="before-delete")
    await delete_node(kube, name)
    uid = (await create_node(kube, name))["metadata"]["uid"]
    successor = await cached(store, name, uid)
    written = store._written(answer)  # the late answer, as the writer hands it to the cache
    assert written.uid == answer["metadata"]["uid"]  # the writer goes on with its own Node
    assert await store.get(name=name) == successor


async def test_a_late_answer_for_a_deleted_node_does_not_bring_it_back(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("zombie")
    await create_node(kube, name)
    await cached(store, name)
    answer = await label_node(kube, name, written="before-delete")
    await delete_node(kube, name)

    async def forgotten() -> bool:
        return await store.get(name=name) is None

    await until(forgotten)
    store._written(answer)
    assert await store.get(name=name) is None
