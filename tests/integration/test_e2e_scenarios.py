"""End to end with the reference's defaults (plus a 1 s deletion confirmation):
what kubelet's ``--node-ip``, UEFI guests, XO outages, resizes, renames,
pool moves, foreign-looking providerIDs and XO tags do to Nodes.

One CCM and one fake XO serve the module; each test has its own pool,
hosts, VMs and Nodes.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from adapters.kubernetes import KubeClient
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .e2e_fixtures import ccm, fake_xo, identity, nodes, shared_ccm, xo  # noqa: F401 (fixtures)
from .e2e_support import (
    GIB,
    SHUTDOWN_TAINT,
    CCMDaemon,
    Nodes,
    World,
    addresses,
    labels,
    lifecycle_results,
    little_endian,
    node_events,
    node_or_none,
    provider_id,
    set_ready,
    taints,
    wait_event,
    wait_gone,
    wait_initialized,
    wait_node,
)
from .kube import get_node, label_node
from .waiting import until

pytestmark = pytest.mark.integration

#: Addresses and labels are also re-synced every 2 s (the periodic safety net).
FLAGS = ("--node-monitor-period=1s", "--node-status-update-frequency=2s")
CONFIG = "deletionConfirmDelay: 1\n"
TAG_LABELS = "node.k8s.xenorchestra/tag-labels"


# -- kubelet's --node-ip ----------------------------------------------------------------
async def test_a_provided_node_ip_the_vm_reports_becomes_the_internal_ip(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(addresses={"0/ipv4/0": "10.20.0.5", "1/ipv4/0": "192.168.50.7"})
    name = await nodes.create(
        "e2e-nodeip",
        system_uuid=vm["id"],
        annotations={L.PROVIDED_NODE_IP: "192.168.50.7"},
    )

    node = await wait_initialized(kube, name)

    assert addresses(node) == [
        ("InternalIP", "192.168.50.7"),
        ("ExternalIP", "10.20.0.5"),
        ("Hostname", name),
    ]
    assert node["spec"]["providerID"] == provider_id(world.pool_id, vm["id"])


async def test_a_provided_node_ip_the_vm_does_not_report_keeps_the_node_tainted(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(addresses={"0/ipv4/0": "10.20.0.6"})
    name = await nodes.create(
        "e2e-nodeip-bad",
        system_uuid=vm["id"],
        annotations={L.PROVIDED_NODE_IP: "192.168.99.99"},
    )

    mismatch = await wait_event(kube, name, "ProvidedNodeIPMismatch")
    assert mismatch["type"] == "Warning"
    assert "192.168.99.99" in mismatch["message"]
    await asyncio.sleep(1.0)  # retried meanwhile, still refused
    node = await node_or_none(kube, name)
    assert node is not None
    assert L.UNINITIALIZED_TAINT_KEY in taints(node)
    assert not node["spec"].get("providerID")
    assert addresses(node) == []

    # The guest tools catch up: the node initializes with kubelet's address.
    await world.set_addresses(vm["id"], {"0/ipv4/0": "10.20.0.6", "1/ipv4/0": "192.168.99.99"})
    node = await wait_initialized(kube, name)
    assert ("InternalIP", "192.168.99.99") in addresses(node)


# -- finding the VM ----------------------------------------------------------------------
async def test_a_node_whose_vm_is_not_found_says_why_where_kubectl_describe_looks(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    vm_id = str(uuid.uuid4())
    name = await nodes.create("e2e-waiting", system_uuid=vm_id)

    warning = await wait_event(kube, name, "VMNotFound")

    assert warning["type"] == "Warning"
    assert warning["source"]["component"] == "cloud-node-controller"
    assert warning["message"] == (
        "Waiting to initialize: no VM found in Xen Orchestra (tried systemUUID "
        f"{vm_id}, little-endian systemUUID {little_endian(vm_id)})"
    )
    # kubectl describe node lists the events whose involvedObject is the Node (its uid)
    node = await get_node(kube, name)
    selector = ",".join(
        (
            "involvedObject.kind=Node",
            f"involvedObject.name={name}",
            "involvedObject.namespace=",
            f"involvedObject.uid={node['metadata']['uid']}",
        )
    )
    described = await kube.request("GET", "/api/v1/events", query=[("fieldSelector", selector)])
    assert [e["reason"] for e in described["items"]] == ["VMNotFound"]
    assert L.UNINITIALIZED_TAINT_KEY in taints(node)

    # The VM appears: the node initializes, and the warning clears nothing.
    world = await World.create(xo, hosts=1)
    await world.vm(vm_id=vm_id)
    await wait_initialized(kube, name)
    reasons = [e["reason"] for e in await node_events(kube, name)]
    assert sorted(set(reasons)) == ["Synced", "VMNotFound"]


async def test_a_little_endian_system_uuid_finds_its_vm(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    swapped = little_endian(vm["id"])
    assert swapped != vm["id"]
    name = await nodes.create("e2e-uefi", system_uuid=swapped)

    node = await wait_initialized(kube, name)

    assert node["spec"]["providerID"] == provider_id(world.pool_id, vm["id"])
    assert labels(node)[L.ZONE] == world.host_id(0)


async def test_a_provider_id_without_pool_is_kept_and_still_works(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(cpus=2, memory=2 * GIB)
    poolless = f"xenorchestra:///{vm['id']}"
    name = await nodes.create("e2e-poolless", provider_id=poolless)

    node = await wait_initialized(kube, name)
    assert node["spec"]["providerID"] == poolless
    assert labels(node)[L.REGION] == world.pool_id

    # Label sync writes the node again: the providerID is never rewritten.
    await xo.resize_vm(vm["id"], cpus=4)
    node = await wait_node(kube, name, lambda n: labels(n)[L.INSTANCE_TYPE] == "4vCPU-2GB")
    assert node["spec"]["providerID"] == poolless

    # Its region label confirms the pool: a deleted VM still deletes the node.
    await set_ready(kube, name, "False")
    await xo.delete_vm(vm["id"])
    await wait_gone(kube, name)


async def test_a_foreign_provider_id_only_loses_the_taint_and_is_never_deleted(
    ccm: CCMDaemon, kube: KubeClient, nodes: Nodes
) -> None:
    foreign = "kind://docker/e2e/worker"
    name = await nodes.create("e2e-foreign", provider_id=foreign, ready="False")

    node = await wait_node(kube, name, lambda n: L.UNINITIALIZED_TAINT_KEY not in taints(n))

    assert node["spec"]["providerID"] == foreign
    assert not [key for key in labels(node) if "xenorchestra" in key or "topology" in key]
    kept_before = lifecycle_results(await ccm.metrics(), "nothing")

    async def passes() -> bool:
        return lifecycle_results(await ccm.metrics(), "nothing") >= kept_before + 2

    await until(passes, within=20, every=0.2)
    await asyncio.sleep(2.0)  # two lifecycle periods, whatever else the cluster holds
    node = await node_or_none(kube, name)
    assert node is not None
    assert SHUTDOWN_TAINT not in taints(node)


# -- XO outages ----------------------------------------------------------------------------
async def assert_kept_while_pool_disconnected(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, name: str, pool_id: str
) -> None:
    """Disconnect ``pool_id`` from XO: pass after pass, well past the 1 s
    confirmation delay, the NotReady node ``name`` is left alone; then reconnect it."""
    kept_before = lifecycle_results(await ccm.metrics(), "keep-uncertain")
    disconnected_at = time.monotonic()
    await xo.disconnect_pool(pool_id)
    try:

        async def several_passes_kept_it() -> bool:
            deleting = await node_events(kube, name, reason="DeletingNode")
            assert not deleting, f"{name} deleted: {deleting[0]['message']}"
            kept = lifecycle_results(await ccm.metrics(), "keep-uncertain")
            return kept >= kept_before + 4

        # The VM 404s while its pool is unknown: pass after pass, and well past
        # the 1 s confirmation delay, the node is left alone.
        await until(several_passes_kept_it, within=20, every=0.2)
        await asyncio.sleep(max(0.0, disconnected_at + 3.5 - time.monotonic()))
        node = await node_or_none(kube, name)
        assert node is not None
        assert SHUTDOWN_TAINT not in taints(node)
        assert not await node_events(kube, name, reason="DeletingNode")
    finally:
        await xo.reconnect_pool(pool_id)
    await asyncio.sleep(1.5)  # a pass or more after the pool came back
    assert await node_or_none(kube, name) is not None


async def test_a_disconnected_pool_never_deletes_its_not_ready_nodes(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-outage", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")

    await assert_kept_while_pool_disconnected(ccm, kube, xo, name, world.pool_id)


async def test_a_node_moved_to_another_pool_is_kept_when_xo_loses_the_new_pool(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    # The providerID keeps the registration pool; the VM now lives in the second
    # one. XO losing the second pool makes the VM 404 while the first pool still
    # answers: that must not read as "deleted" (issue 13, case 1).
    first = await World.create(xo, hosts=1, pool_name="registered pool")
    second = await World.create(xo, hosts=1, pool_name="current pool")
    vm = await first.vm()
    name = await nodes.create("e2e-movelost", system_uuid=vm["id"])
    node = await wait_initialized(kube, name)
    assert node["spec"]["providerID"] == provider_id(first.pool_id, vm["id"])
    await xo.migrate_vm(vm["id"], host_id=second.host_id(0))
    await wait_node(kube, name, lambda n: labels(n)[L.REGION] == second.pool_id)
    await set_ready(kube, name, "False")

    await assert_kept_while_pool_disconnected(ccm, kube, xo, name, second.pool_id)

    # Every pool it was placed in answers again: a deletion now is a deletion.
    await xo.delete_vm(vm["id"])
    await wait_gone(kube, name)


async def test_a_kubelet_provider_id_naming_the_wrong_pool_is_kept_when_xo_loses_the_vms_pool(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    # kubelet --provider-id names a pool XO knows, but not the VM's own.
    wrong = await World.create(xo, hosts=1, pool_name="named pool")
    actual = await World.create(xo, hosts=1, pool_name="actual pool")
    vm = await actual.vm()
    name = await nodes.create("e2e-wrongpool", provider_id=provider_id(wrong.pool_id, vm["id"]))
    node = await wait_initialized(kube, name)
    assert labels(node)[L.REGION] == actual.pool_id
    await set_ready(kube, name, "False")

    await assert_kept_while_pool_disconnected(ccm, kube, xo, name, actual.pool_id)


# -- labels follow the VM --------------------------------------------------------------
async def test_a_resize_updates_the_instance_type(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(cpus=2, memory=4 * GIB)
    name = await nodes.create("e2e-resize", system_uuid=vm["id"])
    node = await wait_initialized(kube, name)
    assert labels(node)[L.INSTANCE_TYPE] == "2vCPU-4GB"

    await xo.resize_vm(vm["id"], cpus=4, memory=8 * GIB)

    node = await wait_node(kube, name, lambda n: labels(n)[L.INSTANCE_TYPE] == "4vCPU-8GB")
    assert labels(node)[L.INSTANCE_TYPE_BETA] == "4vCPU-8GB"
    changed = await wait_event(kube, name, "NodeInstanceTypeHasChanged")
    assert changed["type"] == "Normal"
    assert "old=2vCPU-4GB, new=4vCPU-8GB" in changed["message"]

    # Memory is rounded, not truncated: 3.9 GiB is 4GB.
    await xo.resize_vm(vm["id"], memory=int(3.9 * GIB))
    await wait_node(kube, name, lambda n: labels(n)[L.INSTANCE_TYPE] == "4vCPU-4GB")


async def test_a_vm_started_again_on_another_host_moves_the_zone(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=2)
    vm = await world.vm(host=0)
    name = await nodes.create("e2e-restart", system_uuid=vm["id"])
    await wait_initialized(kube, name)

    await xo.stop_vm(vm["id"])
    await asyncio.sleep(2.5)  # a periodic label sync sees it halted: zone kept
    assert labels(await get_node(kube, name))[L.ZONE] == world.host_id(0)
    await xo.start_vm(vm["id"], host_id=world.host_id(1))

    node = await wait_node(kube, name, lambda n: labels(n)[L.ZONE] == world.host_id(1))
    assert labels(node)[L.HOST_ID] == world.host_id(1)
    assert labels(node)[L.ORIGINAL_HOST_ID] == world.host_id(0)
    await wait_event(kube, name, "NodeZoneChanged")


async def test_new_vm_addresses_reach_the_node_at_the_next_address_sync(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(addresses={"0/ipv4/0": "10.30.0.5"})
    name = await nodes.create("e2e-readdress", system_uuid=vm["id"])
    node = await wait_initialized(kube, name)
    assert addresses(node) == [("ExternalIP", "10.30.0.5"), ("Hostname", name)]

    await world.set_addresses(vm["id"], {"0/ipv4/0": "10.30.0.9"})

    node = await wait_node(kube, name, lambda n: ("ExternalIP", "10.30.0.9") in addresses(n))
    assert addresses(node) == [("ExternalIP", "10.30.0.9"), ("Hostname", name)]


async def test_a_rename_updates_the_vm_name_label(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(name_label="before")
    name = await nodes.create("e2e-rename", system_uuid=vm["id"])
    await wait_initialized(kube, name)

    await xo.rename_vm(vm["id"], name_label="after rename")

    await wait_node(kube, name, lambda n: labels(n)[L.VM_NAME_LABEL] == "after-rename")


async def test_a_move_to_another_pool_updates_region_and_keeps_the_first_pool(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    first = await World.create(xo, hosts=1, pool_name="first pool")
    second = await World.create(xo, hosts=1, pool_name="second pool")
    vm = await first.vm()
    name = await nodes.create("e2e-poolmove", system_uuid=vm["id"])
    node = await wait_initialized(kube, name)
    original_provider_id = node["spec"]["providerID"]

    await xo.migrate_vm(vm["id"], host_id=second.host_id(0))

    node = await wait_node(kube, name, lambda n: labels(n)[L.REGION] == second.pool_id)
    assert {
        key: labels(node).get(key)
        for key in (
            L.REGION_BETA,
            L.POOL_ID,
            L.POOL_NAME_LABEL,
            L.ORIGINAL_POOL_ID,
            L.ZONE,
            L.ORIGINAL_HOST_ID,
        )
    } == {
        L.REGION_BETA: second.pool_id,
        L.POOL_ID: second.pool_id,
        L.POOL_NAME_LABEL: "second-pool",
        L.ORIGINAL_POOL_ID: first.pool_id,
        L.ZONE: second.host_id(0),
        L.ORIGINAL_HOST_ID: first.host_id(0),
    }
    assert node["spec"]["providerID"] == original_provider_id  # immutable
    moved = await wait_event(kube, name, "NodeRegionChanged")
    assert moved["type"] == "Warning"


# -- XO tags -------------------------------------------------------------------------------
async def test_tag_labels_follow_the_tags_and_never_touch_someone_elses_label(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(tags=["k8s.label/team=blue", "k8s.label/env=prod", "unrelated"])
    name = await nodes.create("e2e-taglabels", system_uuid=vm["id"], labels={"env": "manual"})

    node = await wait_initialized(kube, name)
    assert labels(node)["team"] == "blue"
    assert labels(node)["env"] == "manual"  # set by someone else first: not ours

    await xo.tag_vm(vm["id"], tags=["k8s.label/team=green", "k8s.label/env=prod"])
    await wait_node(kube, name, lambda n: labels(n).get("team") == "green")

    await xo.tag_vm(vm["id"], tags=["k8s.label/env=staging"])
    node = await wait_node(kube, name, lambda n: "team" not in labels(n))
    assert labels(node)["env"] == "manual"

    # Somebody else now owns "team": a tag naming it again leaves it alone.
    await label_node(kube, name, team="red")
    await xo.tag_vm(vm["id"], tags=["k8s.label/team=yellow", "k8s.label/tier=gold"])
    node = await wait_node(kube, name, lambda n: labels(n).get("tier") == "gold")
    assert labels(node)["team"] == "red"
    assert labels(node)["env"] == "manual"
    assert node["metadata"]["annotations"][TAG_LABELS] == "tier"


async def test_tag_taints_are_set_at_registration_only(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(tags=["k8s.taint/dedicated=gpu:NoSchedule", "k8s.label/marker=one"])
    name = await nodes.create("e2e-tagtaints", system_uuid=vm["id"])

    node = await wait_initialized(kube, name)
    assert taints(node)["dedicated"] == {
        "key": "dedicated",
        "value": "gpu",
        "effect": "NoSchedule",
    }

    # Removing the tag (and adding another) changes no taint: operators own them now.
    await xo.tag_vm(vm["id"], tags=["k8s.label/marker=two", "k8s.taint/late:NoExecute"])
    node = await wait_node(kube, name, lambda n: labels(n).get("marker") == "two")
    assert "dedicated" in taints(node)
    assert "late" not in taints(node)


async def test_an_invalid_tag_is_reported_and_the_node_still_initializes(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    bad_label, bad_taint = "k8s.label/kubernetes.io/os=windows", "k8s.taint/spot=yes:Sometimes"
    vm = await world.vm(tags=[bad_label, bad_taint, "k8s.label/ok=yes"])
    name = await nodes.create("e2e-badtag", system_uuid=vm["id"])

    node = await wait_initialized(kube, name)

    assert labels(node)["ok"] == "yes"
    assert "kubernetes.io/os" not in labels(node)
    assert "spot" not in taints(node)
    for tag in (bad_label, bad_taint):
        event = await wait_event(
            kube, name, "InvalidVMTag", match=lambda e, t=tag: repr(t) in e["message"]
        )
        assert event["type"] == "Warning"
