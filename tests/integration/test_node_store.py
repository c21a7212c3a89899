"""KubernetesNodeStore against a real kube-apiserver: cache, watch, patches, preconditions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.kubernetes import ClientSettings, KubeClient, KubernetesNodeStore, connect
from domain.errors import ConflictError, InvalidNodeError, NodeGoneError, NodeStoreError
from domain.model import (
    AddressType,
    Node,
    NodeAddress,
    NodeChange,
    Readiness,
    Taint,
    TaintEffect,
)

from .controlplane import ControlPlane
from .kube import UNINITIALIZED, create_node, delete_node, get_node, label_node, unique
from .waiting import until

pytestmark = pytest.mark.integration


@pytest.fixture
async def ccm_client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """The CCM's own client (counted requests), separate from the admin one."""
    client = await connect(
        str(control_plane.admin_kubeconfig), settings=ClientSettings(qps=50, burst=50), name="ccm"
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def store(ccm_client: KubeClient) -> AsyncIterator[KubernetesNodeStore]:
    nodes = KubernetesNodeStore(ccm_client)
    async with nodes:
        async with asyncio.timeout(10):
            await nodes.wait_synced()
        yield nodes


async def eventually(store: KubernetesNodeStore, name: str, check: object) -> Node:
    """Wait until the cached copy of ``name`` satisfies ``check`` (a predicate)."""
    assert callable(check)
    found: list[Node] = []

    async def matches() -> bool:
        node = await store.get(name=name)
        if node is not None and check(node):
            found.append(node)
            return True
        return False

    await until(matches)
    return found[0]


async def test_cache_converts_nodes_to_lean_domain_values(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("lean")
    created = await create_node(
        kube,
        name,
        system_uuid="6E1B5A3C-0000-4000-8000-000000000001",
        labels={"team": "a"},
        annotations={"alpha.kubernetes.io/provided-node-ip": "10.0.0.7"},
        addresses=[{"type": "InternalIP", "address": "10.0.0.7"}],
        ready="False",
    )
    node = await eventually(store, name, lambda n: True)
    assert node.uid == created["metadata"]["uid"]
    assert node.resource_version == created["metadata"]["resourceVersion"]
    assert node.system_uuid == "6E1B5A3C-0000-4000-8000-000000000001"
    assert node.labels["team"] == "a"
    assert node.annotations["alpha.kubernetes.io/provided-node-ip"] == "10.0.0.7"
    assert node.has_taint(UNINITIALIZED)
    assert node.addresses == (NodeAddress(AddressType.INTERNAL_IP, "10.0.0.7"),)
    assert node.readiness is Readiness.FALSE
    assert node.provider_id == ""
    assert node.created_at is not None
    assert abs(node.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert name in {n.name for n in await store.list()}


async def test_node_without_ready_condition_reads_as_missing(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("noready")
    await create_node(kube, name, ready=None)
    node = await eventually(store, name, lambda n: True)
    assert node.readiness is Readiness.MISSING


async def test_watch_yields_cached_nodes_then_adds_and_updates(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    first = unique("first")
    await create_node(kube, first)
    await eventually(store, first, lambda n: True)
    second = unique("second")
    seen: list[Node] = []

    async def consume() -> None:
        async for node in store.watch():
            seen.append(node)

    consumer = asyncio.create_task(consume())
    try:
        await until(lambda: first in {n.name for n in seen})
        await create_node(kube, second)
        await until(lambda: second in {n.name for n in seen})
        await label_node(kube, first, color="blue")
        await until(lambda: any(n.name == first and n.labels.get("color") == "blue" for n in seen))
    finally:
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer


async def test_deleted_node_leaves_the_cache(kube: KubeClient, store: KubernetesNodeStore) -> None:
    name = unique("bye")
    await create_node(kube, name)
    await eventually(store, name, lambda n: True)
    await delete_node(kube, name)

    async def absent() -> bool:
        return await store.get(name=name) is None

    await until(absent)


async def test_update_writes_labels_taints_and_provider_id_in_one_request(
    kube: KubeClient, store: KubernetesNodeStore, ccm_client: KubeClient
) -> None:
    name = unique("init")
    await create_node(
        kube,
        name,
        labels={"beta.kubernetes.io/instance-type": "old", "stale": "x"},
        taints=[{"key": "keep-me", "value": "1", "effect": "NoExecute"}],
    )
    node = await eventually(store, name, lambda n: True)
    change = NodeChange(
        provider_id="xenorchestra://pool-1/vm-1",
        set_labels={
            "node.kubernetes.io/instance-type": "2vCPU-4GB",
            "topology.kubernetes.io/zone": "h1",
        },
        remove_labels=frozenset({"stale"}),
        remove_taint_keys=frozenset({UNINITIALIZED}),
        add_taints=(Taint("example.com/extra", TaintEffect.PREFER_NO_SCHEDULE, "v"),),
    )
    before = ccm_client.requests.copy()
    written = await store.update(node=node, change=change)
    sent = ccm_client.requests - before
    assert sent == {"PATCH": 1}

    assert written.provider_id == "xenorchestra://pool-1/vm-1"
    assert written.labels["node.kubernetes.io/instance-type"] == "2vCPU-4GB"
    assert "stale" not in written.labels
    assert not written.has_taint(UNINITIALIZED)
    assert written.has_taint("keep-me") and written.has_taint("example.com/extra")
    assert int(written.resource_version) > int(node.resource_version)
    # the cache answers with the write at once, before any watch event
    assert await store.get(name=name) == written

    server = await get_node(kube, name)
    assert server["spec"]["providerID"] == "xenorchestra://pool-1/vm-1"
    assert server["metadata"]["labels"]["topology.kubernetes.io/zone"] == "h1"
    assert "stale" not in server["metadata"]["labels"]
    keys = {t["key"] for t in server["spec"]["taints"]}
    assert UNINITIALIZED not in keys
    assert {"keep-me", "example.com/extra"} <= keys


async def test_update_sets_and_removes_annotations_with_a_taint_in_one_request(
    kube: KubeClient, store: KubernetesNodeStore, ccm_client: KubeClient
) -> None:
    """How the out-of-service taint and the annotation saying it is ours come and go:
    together, so no reader ever sees one without the other."""
    name = unique("mark")
    await create_node(kube, name, uninitialized=False, annotations={"someone/else": "kept"})
    node = await eventually(store, name, lambda n: True)
    taint = Taint("node.kubernetes.io/out-of-service", TaintEffect.NO_EXECUTE, "nodeshutdown")
    before = ccm_client.requests.copy()
    added = await store.update(
        node=node, change=NodeChange(add_taints=(taint,), set_annotations={"ours/mark": "yes"})
    )
    removed = await store.update(
        node=added,
        change=NodeChange(remove_taints=(taint,), remove_annotations=frozenset({"ours/mark"})),
    )
    assert ccm_client.requests - before == {"PATCH": 2}
    assert added.annotations["ours/mark"] == "yes" and taint in added.taints
    assert "ours/mark" not in removed.annotations and taint not in removed.taints
    server = await get_node(kube, name)
    assert server["metadata"]["annotations"].get("ours/mark") is None
    assert server["metadata"]["annotations"]["someone/else"] == "kept"
    assert taint.key not in {t["key"] for t in server["spec"].get("taints") or []}


async def test_update_from_a_stale_copy_conflicts_and_the_next_read_is_fresh(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("stale")
    await create_node(kube, name)
    stale = await eventually(store, name, lambda n: True)
    moved = await label_node(kube, name, kubelet="touched")
    with pytest.raises(ConflictError):
        await store.update(
            node=stale, change=NodeChange(remove_taint_keys=frozenset({UNINITIALIZED}))
        )
    fresh = await store.get(name=name)
    assert fresh is not None
    assert fresh.resource_version == moved["metadata"]["resourceVersion"]
    assert fresh.labels["kubelet"] == "touched"
    # the stale write did not happen
    assert UNINITIALIZED in {t["key"] for t in (await get_node(kube, name))["spec"]["taints"]}
    written = await store.update(
        node=fresh, change=NodeChange(remove_taint_keys=frozenset({UNINITIALIZED}))
    )
    assert not written.has_taint(UNINITIALIZED)
    assert written.labels["kubelet"] == "touched"


async def test_provider_id_is_set_once_and_a_change_is_refused(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("pid")
    await create_node(kube, name)
    node = await eventually(store, name, lambda n: True)
    node = await store.update(node=node, change=NodeChange(provider_id="xenorchestra://p/vm-a"))
    assert node.provider_id == "xenorchestra://p/vm-a"
    with pytest.raises(InvalidNodeError, match="providerID"):
        await store.update(node=node, change=NodeChange(provider_id="xenorchestra://p/vm-b"))
    assert (await get_node(kube, name))["spec"]["providerID"] == "xenorchestra://p/vm-a"


async def test_set_addresses_replaces_the_list_on_the_status_subresource(
    kube: KubeClient, store: KubernetesNodeStore, ccm_client: KubeClient
) -> None:
    name = unique("addr")
    await create_node(
        kube,
        name,
        addresses=[
            {"type": "InternalIP", "address": "10.0.0.9"},
            {"type": "ExternalIP", "address": "192.0.2.1"},
        ],
    )
    node = await eventually(store, name, lambda n: True)
    wanted = (
        NodeAddress(AddressType.INTERNAL_IP, "10.0.0.9"),
        NodeAddress(AddressType.EXTERNAL_IP, "192.0.2.50"),
        NodeAddress(AddressType.HOSTNAME, name),
    )
    before = ccm_client.requests.copy()
    written = await store.set_addresses(node=node, addresses=wanted)
    assert ccm_client.requests - before == {"PATCH": 1}
    assert written.addresses == wanted
    server = await get_node(kube, name)
    assert server["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.9"},
        {"type": "ExternalIP", "address": "192.0.2.50"},
        {"type": "Hostname", "address": name},
    ]
    # the status write leaves spec and labels alone
    assert UNINITIALIZED in {t["key"] for t in server["spec"]["taints"]}


async def test_a_change_that_changes_nothing_sends_no_request(
    kube: KubeClient, store: KubernetesNodeStore, ccm_client: KubeClient
) -> None:
    name = unique("noop")
    await create_node(
        kube,
        name,
        uninitialized=False,
        labels={"topology.kubernetes.io/region": "pool-1"},
        provider_id="xenorchestra://pool-1/vm-9",
        addresses=[{"type": "InternalIP", "address": "10.0.0.3"}],
    )
    node = await eventually(store, name, lambda n: True)
    before = ccm_client.requests.copy()
    same = await store.update(
        node=node,
        change=NodeChange(
            provider_id="xenorchestra://pool-1/vm-9",
            set_labels={"topology.kubernetes.io/region": "pool-1"},
            remove_labels=frozenset({"absent"}),
            remove_taint_keys=frozenset({UNINITIALIZED}),
        ),
    )
    again = await store.set_addresses(node=node, addresses=node.addresses)
    await store.get(name=name)
    await store.list()
    assert ccm_client.requests - before == {}
    assert same == node and again == node


async def test_delete_honours_the_uid_precondition(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("del")
    await create_node(kube, name)
    old = await eventually(store, name, lambda n: True)
    await delete_node(kube, name)
    recreated = await create_node(kube, name)
    with pytest.raises(NodeGoneError):
        await store.delete(node=old)
    assert (await get_node(kube, name))["metadata"]["uid"] == recreated["metadata"]["uid"]
    current = await eventually(store, name, lambda n: n.uid == recreated["metadata"]["uid"])
    await store.delete(node=current)
    assert await store.get(name=name) is None
    with pytest.raises(NodeGoneError):
        await store.delete(node=current)


async def test_writes_to_a_deleted_node_raise_node_gone(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("gone")
    await create_node(kube, name)
    node = await eventually(store, name, lambda n: True)
    await delete_node(kube, name)
    with pytest.raises(NodeGoneError):
        await store.update(node=node, change=NodeChange(set_labels={"a": "b"}))
    with pytest.raises(NodeGoneError):
        await store.set_addresses(node=node, addresses=(NodeAddress(AddressType.HOSTNAME, name),))


async def test_watch_resumes_after_a_dropped_connection_without_relisting(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    name = unique("resume")
    await create_node(kube, name)
    await eventually(store, name, lambda n: True)
    lists = store.reflector.lists
    await store.reflector.reconnect()
    await label_node(kube, name, after="reconnect")
    await eventually(store, name, lambda n: n.labels.get("after") == "reconnect")
    assert store.reflector.lists == lists


async def test_reads_before_start_are_refused(ccm_client: KubeClient) -> None:
    with pytest.raises(NodeStoreError, match="not started"):
        await KubernetesNodeStore(ccm_client).get(name="x")


async def test_the_watch_skips_only_versions_the_cache_holds(
    kube: KubeClient, store: KubernetesNodeStore
) -> None:
    """What the store tells its watch to skip undecoded (the echo of its own write):
    the cached version and older ones of that very Node, nothing newer, nothing of a
    Node created again under the same name."""
    name = unique("held")
    await create_node(kube, name)
    cached = await eventually(store, name, lambda n: True)
    written = await store.update(node=cached, change=NodeChange(set_labels={"by": "ccm"}))
    version = int(written.resource_version)
    holds = store.reflector._known
    assert holds is not None
    assert holds(name, written.uid, str(version))
    assert holds(name, written.uid, str(version - 1))
    assert not holds(name, written.uid, str(version + 1))
    assert not holds(name, "00000000-0000-4000-8000-000000000000", str(version))
    assert not holds(unique("absent"), written.uid, str(version))
    other = await label_node(kube, name, by="someone-else")
    seen = await eventually(store, name, lambda n: n.labels.get("by") == "someone-else")
    assert seen.resource_version == other["metadata"]["resourceVersion"]
    await delete_node(kube, name)
