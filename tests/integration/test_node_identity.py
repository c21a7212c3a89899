"""A Node deleted and created again under its name (a VM rebuilt, a kubelet registering
anew) is another node: nothing read, planned or computed for the old one is written
onto it, and the cache never takes the old one back. Real kube-apiserver, the CCM's
real node store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from adapters.kubernetes import ClientSettings, KubeClient, KubernetesNodeStore, connect
from adapters.kubernetes.convert import node_from_object
from domain.errors import NodeGoneError
from domain.model import AddressType, Node, NodeAddress, NodeChange
from domain.services.node_updates import update_on_conflict_retry

from .controlplane import ControlPlane
from .kube import UNINITIALIZED, create_node, delete_node, get_node, label_node, unique
from .waiting import until

pytestmark = pytest.mark.integration

NODES = "/api/v1/nodes"


@pytest.fixture(autouse=True)
async def _nodes_removed_after(kube: KubeClient) -> AsyncIterator[None]:
    """The Nodes a test made are deleted after it: uninitialized Nodes of VMs no XO
    knows would keep the CCMs of later tests retrying (and logging) for nothing."""
    before = {obj["metadata"]["name"] for obj in (await kube.request("GET", NODES))["items"]}
    yield
    for obj in (await kube.request("GET", NODES))["items"]:
        if obj["metadata"]["name"] not in before:
            await delete_node(kube, obj["metadata"]["name"])


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


class _SlowNodeReads:
    """The store's client, with a hook run around each GET of one Node: the answer
    reaches the store only after ``meanwhile`` (what the world did while it travelled)."""

    def __init__(self, client: KubeClient, meanwhile: Callable[[], Awaitable[None]]) -> None:
        self._client = client
        self._meanwhile = meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET" or path == "/api/v1/nodes":
            return await self._client.request(method, path, **kwargs)
        try:
            return await self._client.request(method, path, **kwargs)
        finally:
            await self._meanwhile()


async def test_a_read_that_found_no_node_does_not_forget_the_one_created_after_it(
    kube: KubeClient, control_plane: ControlPlane
) -> None:
    """A write refused (the Node was made again), the read that follows finds no Node (it
    was deleted again), and a third one is created and watched before that answer is
    taken: the answer says nothing of the third one, which stays cached and followed."""
    name = unique("third")
    client = await connect(
        str(control_plane.admin_kubeconfig), settings=ClientSettings(qps=50, burst=50), name="ccm"
    )
    third: list[str] = []
    store: KubernetesNodeStore

    async def recreate() -> None:
        third.append((await create_node(kube, name))["metadata"]["uid"])
        await cached(store, name, third[0])

    store = KubernetesNodeStore(cast(KubeClient, _SlowNodeReads(client, recreate)))
    try:
        async with store:
            await store.wait_synced()
            await create_node(kube, name)
            first = await cached(store, name)
            await delete_node(kube, name)
            await create_node(kube, name)  # the second: the write on the first conflicts
            real_request = client.request

            async def delete_before_the_read(method: str, path: str, **kwargs: Any) -> Any:
                if method == "GET" and path.endswith(f"/{name}"):
                    await delete_node(kube, name)  # gone again when the read arrives
                return await real_request(method, path, **kwargs)

            client.request = delete_before_the_read  # type: ignore[method-assign]
            with pytest.raises(NodeGoneError):
                await store.update(node=first, change=NodeChange(set_labels={"a": "b"}))
            client.request = real_request  # type: ignore[method-assign]
            assert (await store.get(name=name)) is not None
            assert (await store.get(name=name)).uid == third[0]  # type: ignore[union-attr]
            await label_node(kube, name, seen="later")
            followed = await cached(store, name, third[0])
            await until(lambda: _labelled(store, name))
            assert followed.uid == third[0]
    finally:
        await client.aclose()


async def _labelled(store: KubernetesNodeStore, name: str) -> bool:
    node = await store.get(name=name)
    return node is not None and node.labels.get("seen") == "later"


async def test_a_list_older_than_a_cached_node_leaves_it_cached(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    """A re-list answered before a Node was made again under a deleted one's name, taken
    after the cache got the new Node (from a write's refresh): the list does not know
    the new Node, which stays cached and followed."""
    name = unique("relist")
    await create_node(kube, name)
    await cached(store, name)
    await delete_node(kube, name)
    await until(lambda: _absent(store, name))
    listing = await kube.request("GET", "/api/v1/nodes")
    uid = (await create_node(kube, name))["metadata"]["uid"]
    await cached(store, name, uid)
    store.reflector.resource_version = listing["metadata"]["resourceVersion"]
    store._replace([node_from_object(obj) for obj in listing["items"]])  # the late list
    assert (await store.get(name=name)) is not None
    await label_node(kube, name, seen="later")
    await until(lambda: _labelled(store, name))


async def _absent(store: KubernetesNodeStore, name: str) -> bool:
    return await store.get(name=name) is None


async def test_a_node_replaced_by_a_re_list_never_comes_back_from_a_late_answer(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    """A re-list (the watch was down) shows another Node under the name: the cached one
    was deleted, said as a removal, and an answer to a write on it that arrives after
    the new one was deleted too does not bring the old one back."""
    name = unique("relisted")
    await create_node(kube, name)
    old = await cached(store, name)
    removed: list[str] = []

    async def follow_removals() -> None:
        async for gone in store.removals():
            removed.append(gone.uid)

    follower = asyncio.create_task(follow_removals())
    await asyncio.sleep(0)
    late_answer = await label_node(kube, name, written="before-delete")
    await store.reflector.stop()  # the watch is down: the cache hears nothing
    await delete_node(kube, name)
    successor = await create_node(kube, name)
    listing = await kube.request("GET", "/api/v1/nodes")
    store.reflector.resource_version = listing["metadata"]["resourceVersion"]
    store._replace([node_from_object(obj) for obj in listing["items"]])
    assert (await store.get(name=name)).uid == successor["metadata"]["uid"]  # type: ignore[union-attr]
    await delete_node(kube, name)
    store._on_event("DELETED", successor)  # the watch, back, says the new one went too
    store._written(late_answer)
    await asyncio.sleep(0)
    follower.cancel()
    assert await store.get(name=name) is None
    assert old.uid in removed


async def test_a_node_kept_by_a_finalizer_stays_followed_after_the_ccm_deletes_it(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    """A DELETE answered with the Node still there (a finalizer holds it, as autoscalers
    add): the cache keeps following it until the watch says it is gone."""
    name = unique("final")
    await create_node(kube, name)
    await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        body={"metadata": {"finalizers": ["example.com/hold"]}},
        content_type="application/merge-patch+json",
    )
    node = await cached(store, name)
    await store.delete(node=node)
    await label_node(kube, name, seen="later")
    await until(lambda: _labelled(store, name))
    await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        body={"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    await until(lambda: _absent(store, name))
