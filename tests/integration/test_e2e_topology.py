"""End to end with zones from host tags (``zoneSource: hostTag``): the CCM's console
script, the real kube-apiserver and the fake XO over HTTP.

Hosts are grouped by their XO tag ``k8s.zone=<zone>``: a live migration inside a group
leaves the zone label alone and warns nothing, a move to another group moves it with a
``NodeZoneChanged`` Warning, a retagged host moves its nodes' zone at the next label
pass, and a host without a usable tag gives no zone and never removes one.

One CCM and one fake XO serve the module; each test has its own pool, hosts (and zone
names), VMs and Nodes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.kubernetes import KubeClient
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .e2e_fixtures import ccm, fake_xo, identity, nodes, shared_ccm, xo  # noqa: F401 (fixtures)
from .e2e_support import (
    CCMDaemon,
    Nodes,
    World,
    labels,
    node_events,
    wait_event,
    wait_initialized,
    wait_node,
)
from .kube import get_node, unique

pytestmark = pytest.mark.integration

#: A label pass every 2 s: a retagged host is seen within one.
PASS = 2.0
FLAGS = ("--node-monitor-period=1s", f"--node-status-update-frequency={PASS:g}s")
CONFIG = "zoneSource: hostTag\n"
ZONE_KEYS = (L.ZONE, L.ZONE_BETA)


async def racks(xo: FakeXOControlClient) -> tuple[World, str, str]:
    """A pool with hosts 0 and 1 in one zone, 2 in another, 3 untagged."""
    world = await World.create(xo, hosts=4)
    rack_a, rack_b = unique("rack-a"), unique("rack-b")
    await xo.tag_host(world.host_id(0), tags=[f"k8s.zone={rack_a}", "ssd"])
    await xo.tag_host(world.host_id(1), tags=[f"k8s.zone={rack_a}"])
    await xo.tag_host(world.host_id(2), tags=[f"k8s.zone={rack_b}"])
    return world, rack_a, rack_b


def zone_labels(node: dict[str, Any]) -> dict[str, str | None]:
    found = labels(node)
    return {key: found.get(key) for key in (*ZONE_KEYS, L.HOST_ID, L.ORIGINAL_HOST_ID)}


async def test_a_live_migration_inside_the_zone_group_leaves_the_zone_label_untouched(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world, rack_a, _ = await racks(xo)
    vm = await world.vm(host=0)
    name = await nodes.create("e2e-zone-inside", system_uuid=vm["id"])
    node = await wait_initialized(kube, name)
    before = zone_labels(node)
    assert before == {
        L.ZONE: rack_a,
        L.ZONE_BETA: rack_a,
        L.HOST_ID: world.host_id(0),
        L.ORIGINAL_HOST_ID: None,
    }
    written = node["metadata"]["resourceVersion"]

    await xo.migrate_vm(vm["id"], host_id=world.host_id(1))

    # label sync has followed the VM: the XO labels name the new host...
    node = await wait_node(kube, name, lambda n: labels(n)[L.HOST_ID] == world.host_id(1))
    after = zone_labels(node)
    # ... and a full label pass later the zone is still the group's, with no Warning
    await asyncio.sleep(PASS * 1.5)
    settled = zone_labels(await get_node(kube, name))
    print(f"E2E-EVIDENCE migration inside {rack_a}: before={before} after={after}")
    assert node["metadata"]["resourceVersion"] != written
    assert (
        after
        == settled
        == {
            L.ZONE: rack_a,
            L.ZONE_BETA: rack_a,
            L.HOST_ID: world.host_id(1),
            L.ORIGINAL_HOST_ID: world.host_id(0),
        }
    )
    assert await node_events(kube, name, reason="NodeZoneChanged") == []


async def test_a_migration_to_another_group_moves_the_zone_with_a_warning(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world, rack_a, rack_b = await racks(xo)
    vm = await world.vm(host=1)
    name = await nodes.create("e2e-zone-across", system_uuid=vm["id"])
    await wait_initialized(kube, name)

    await xo.migrate_vm(vm["id"], host_id=world.host_id(2))

    node = await wait_node(kube, name, lambda n: labels(n)[L.ZONE] == rack_b)
    assert zone_labels(node) == {
        L.ZONE: rack_b,
        L.ZONE_BETA: rack_b,
        L.HOST_ID: world.host_id(2),
        L.ORIGINAL_HOST_ID: world.host_id(1),
    }
    changed = await wait_event(kube, name, "NodeZoneChanged")
    assert changed["type"] == "Warning"
    assert changed["message"] == (
        f"Node {name} zone changed (node VM host changed): old={rack_a}, new={rack_b}"
    )


async def test_a_host_without_the_tag_gives_no_zone_and_never_removes_one(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world, rack_a, _ = await racks(xo)
    untagged = await world.vm(host=3)
    moving = await world.vm(host=0)
    bare = await nodes.create("e2e-zone-untagged", system_uuid=untagged["id"])
    kept = await nodes.create("e2e-zone-kept", system_uuid=moving["id"])

    node = await wait_initialized(kube, bare)
    assert zone_labels(node)[L.ZONE] is None and labels(node)[L.HOST_ID] == world.host_id(3)
    await wait_initialized(kube, kept)
    await xo.migrate_vm(moving["id"], host_id=world.host_id(3))
    node = await wait_node(kube, kept, lambda n: labels(n)[L.HOST_ID] == world.host_id(3))
    await asyncio.sleep(PASS * 1.5)

    node = await get_node(kube, kept)
    assert (labels(node)[L.ZONE], labels(node)[L.ZONE_BETA]) == (rack_a, rack_a)
    assert L.ZONE not in labels(await get_node(kube, bare))
    assert await node_events(kube, kept, reason="NodeZoneChanged") == []


async def test_a_retagged_host_moves_its_nodes_zone_at_the_next_label_pass(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world, rack_a, _ = await racks(xo)
    vm = await world.vm(host=0)
    name = await nodes.create("e2e-zone-retag", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    rack_c = unique("rack-c")

    await xo.tag_host(world.host_id(0), tags=[f"k8s.zone={rack_c}"])

    node = await wait_node(kube, name, lambda n: labels(n)[L.ZONE] == rack_c, within=PASS * 4)
    assert labels(node)[L.ZONE_BETA] == rack_c
    assert L.ORIGINAL_HOST_ID not in labels(node)  # nothing moved
    changed = await wait_event(kube, name, "NodeZoneChanged")
    assert changed["message"] == (
        f"Node {name} zone changed (host tag k8s.zone changed): old={rack_a}, new={rack_c}"
    )

    # a lost tag leaves the zone as it is
    await xo.tag_host(world.host_id(0), tags=[])
    await asyncio.sleep(PASS * 2)
    assert labels(await get_node(kube, name))[L.ZONE] == rack_c


async def test_an_unusable_host_tag_is_a_warning_on_the_node_naming_it(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world, _, _ = await racks(xo)
    await xo.tag_host(world.host_id(3), tags=["k8s.zone=rack 3"])
    vm = await world.vm(host=3)
    name = await nodes.create("e2e-zone-invalid", system_uuid=vm["id"])

    node = await wait_initialized(kube, name)

    assert L.ZONE not in labels(node)
    warning = await wait_event(kube, name, "InvalidTopologyTag")
    assert warning["type"] == "Warning"
    assert warning["message"] == (
        f"host {world.hosts[3]['name_label']} ({world.host_id(3)}) tag 'k8s.zone=rack 3' "
        "ignored: not a label value: value 'rack 3' must be at most 63 alphanumerics, '-', "
        "'_' or '.'; the zone label is left as it is"
    )
