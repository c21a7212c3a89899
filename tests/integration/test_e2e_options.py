"""End to end with the cloud-config keys beyond the reference: tag taints kept
in sync, CIDR address selection, the out-of-service taint, no deletion
confirmation delay (instant reactions, measured) and the pool-disconnect storm.

One CCM and one fake XO serve the module; each test has its own pool,
hosts, VMs and Nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from adapters.kubernetes import KubeClient
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .e2e_fixtures import ccm, fake_xo, identity, nodes, shared_ccm, xo  # noqa: F401 (fixtures)
from .e2e_support import (
    OUT_OF_SERVICE_TAINT,
    SHUTDOWN_TAINT,
    SUBSCRIPTIONS_PER_STREAM,
    CCMDaemon,
    Nodes,
    World,
    addresses,
    labels,
    lifecycle_results,
    node_events,
    node_or_none,
    provider_id,
    report,
    set_ready,
    subscription_count,
    taints,
    timed,
    wait_event,
    wait_initialized,
    wait_node,
)
from .kube import get_node
from .waiting import until

pytestmark = pytest.mark.integration

FLAGS = ("--node-monitor-period=1s", "--node-status-update-frequency=10m")
GRACE = 2.0
CONFIG = f"""\
deletionConfirmDelay: 0
syncTaints: true
internalCIDRs: ["192.168.0.0/16", "10.0.0.0/8"]
excludeCIDRs: ["10.42.0.0/16"]
outOfServiceTaint: true
outOfServiceGracePeriod: {GRACE:g}
"""
#: Issue 6: a live migration reaches the zone label in under 2 s (XO events).
MIGRATION_BOUND = 2.0
STORM_NODES = 50


async def test_with_sync_taints_tag_taints_follow_the_tags_but_not_an_operators_taint(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(
        tags=["k8s.taint/dedicated=gpu:NoSchedule", "k8s.taint/example.com/maint=tag:NoSchedule"]
    )
    operators = {"key": "example.com/maint", "value": "manual", "effect": "NoSchedule"}
    name = await nodes.create("e2e-synctaints", system_uuid=vm["id"], taints=[operators])

    node = await wait_initialized(kube, name)
    assert taints(node)["dedicated"]["value"] == "gpu"
    assert taints(node)["example.com/maint"] == operators

    await xo.tag_vm(vm["id"], tags=["k8s.taint/dedicated=cpu:NoSchedule"])
    node = await wait_node(kube, name, lambda n: taints(n)["dedicated"]["value"] == "cpu")
    assert taints(node)["example.com/maint"] == operators

    await xo.tag_vm(vm["id"], tags=["k8s.taint/late:NoExecute"])
    node = await wait_node(kube, name, lambda n: "dedicated" not in taints(n))
    assert taints(node)["late"]["effect"] == "NoExecute"
    assert taints(node)["example.com/maint"] == operators


async def test_the_instance_type_follows_its_tag_and_an_invalid_one_falls_back_with_a_warning(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(tags=["k8s.instance-type=gpu-large"], cpus=4, memory=8 * 1024**3)
    name = await nodes.create("e2e-itype", system_uuid=vm["id"])

    node = await wait_initialized(kube, name)
    assert labels(node)[L.INSTANCE_TYPE] == labels(node)[L.INSTANCE_TYPE_BETA] == "gpu-large"

    await xo.tag_vm(vm["id"], tags=["k8s.instance-type=gpu-xl"])
    await wait_node(kube, name, lambda n: labels(n)[L.INSTANCE_TYPE] == "gpu-xl")

    await xo.tag_vm(vm["id"], tags=["k8s.instance-type=gpu/xl"])
    node = await wait_node(kube, name, lambda n: labels(n)[L.INSTANCE_TYPE] == "4vCPU-8GB")
    assert labels(node)[L.INSTANCE_TYPE_BETA] == "4vCPU-8GB"
    warning = await wait_event(kube, name, "InvalidVMTag")
    assert warning["type"] == "Warning"
    assert "'k8s.instance-type=gpu/xl'" in warning["message"]


async def test_addresses_are_chosen_by_cidr_without_a_node_ip(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm(
        addresses={
            "0/ipv4/0": "10.0.0.5",  # internal, second CIDR
            "1/ipv4/0": "192.168.10.5",  # internal, first CIDR: listed first
            "2/ipv4/0": "10.42.0.1",  # excluded (a CNI bridge), although in 10/8
            "3/ipv4/0": "172.17.0.1",  # in no CIDR
            "0/ipv6/0": "fd00::5",  # IPv6: not the configured family
        }
    )
    name = await nodes.create("e2e-cidr", system_uuid=vm["id"])

    node = await wait_initialized(kube, name)

    assert addresses(node) == [
        ("InternalIP", "192.168.10.5"),
        ("InternalIP", "10.0.0.5"),
        ("Hostname", name),
    ]


async def test_out_of_service_taint_after_the_grace_period_and_gone_when_ready(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-oos", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")

    halted_at = time.monotonic()
    await xo.stop_vm(vm["id"])
    node = await wait_node(kube, name, lambda n: SHUTDOWN_TAINT in taints(n))
    assert OUT_OF_SERVICE_TAINT not in taints(node)  # not before the grace period
    node = await wait_node(kube, name, lambda n: OUT_OF_SERVICE_TAINT in taints(n), within=20)
    waited = time.monotonic() - halted_at
    assert waited >= GRACE - 0.1, waited
    assert taints(node)[OUT_OF_SERVICE_TAINT] == {
        "key": OUT_OF_SERVICE_TAINT,
        "value": "nodeshutdown",
        "effect": "NoExecute",
    }
    assert L.OUT_OF_SERVICE_ADDED_BY in node["metadata"]["annotations"]  # it says it is ours

    await xo.start_vm(vm["id"])
    await set_ready(kube, name, "True")
    node = await wait_node(
        kube,
        name,
        lambda n: OUT_OF_SERVICE_TAINT not in taints(n) and SHUTDOWN_TAINT not in taints(n),
    )
    assert L.OUT_OF_SERVICE_ADDED_BY not in (node["metadata"].get("annotations") or {})


async def test_an_operators_out_of_service_taint_stays_whatever_the_vm_does(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    """Kubernetes' non-graceful shutdown guide has the operator add this very taint by
    hand to a node whose guest hangs: the CCM neither removes it nor takes it for its own."""
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-oos-theirs", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")
    theirs = {"key": OUT_OF_SERVICE_TAINT, "value": "nodeshutdown", "effect": "NoExecute"}
    current = await get_node(kube, name)
    await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        body={
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "spec": {"taints": [*(current["spec"].get("taints") or []), theirs]},
        },
        content_type="application/merge-patch+json",
    )
    await asyncio.sleep(GRACE * 2)  # several lifecycle passes, the VM running
    await xo.stop_vm(vm["id"])
    await wait_node(kube, name, lambda n: SHUTDOWN_TAINT in taints(n))
    await asyncio.sleep(GRACE * 2)  # halted past the grace period
    await xo.start_vm(vm["id"])
    await set_ready(kube, name, "True")
    await wait_node(kube, name, lambda n: SHUTDOWN_TAINT not in taints(n))
    node = await get_node(kube, name)
    assert taints(node)[OUT_OF_SERVICE_TAINT] == theirs
    assert L.OUT_OF_SERVICE_ADDED_BY not in (node["metadata"].get("annotations") or {})


@pytest.mark.parametrize("power_state", ["Suspended", "Paused"])
async def test_a_suspended_or_paused_vm_never_gets_out_of_service(
    power_state: str, ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    # Its guest still holds its pods and volume caches in memory: force-deleting the
    # pods and detaching the volumes would corrupt data once it resumes.
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-oos-mem", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")

    await xo.call("PATCH", f"/vms/{vm['id']}", {"power_state": power_state})
    await wait_node(kube, name, lambda n: SHUTDOWN_TAINT in taints(n))
    await asyncio.sleep(GRACE * 3)  # well past the grace period, several passes
    node = await get_node(kube, name)
    assert OUT_OF_SERVICE_TAINT not in taints(node)
    assert SHUTDOWN_TAINT in taints(node)


async def test_instant_reactions_to_migrations_and_vm_removals(
    ccm: CCMDaemon,
    kube: KubeClient,
    xo: FakeXOControlClient,
    nodes: Nodes,
    record_property: Callable[[str, object], None],
) -> None:
    world = await World.create(xo, hosts=2)
    vms = [await world.vm(host=0) for _ in range(3)]
    names = [await nodes.create("e2e-instant", system_uuid=vm["id"]) for vm in vms]
    for name in names:
        await wait_initialized(kube, name)

    migrations = []
    for round_ in range(3):
        for vm, name in zip(vms, names, strict=True):
            host = world.host_id((round_ + 1) % 2)

            async def migrate(vm_id: str = vm["id"], host: str = host) -> None:
                await xo.migrate_vm(vm_id, host_id=host)

            async def zone_moved(name: str = name, host: str = host) -> bool:
                return labels(await get_node(kube, name)).get(L.ZONE) == host

            migrations.append(await timed(migrate, zone_moved, within=20))
    report(record_property, "migration->zone label (deletionConfirmDelay 0)", migrations)
    assert max(migrations) < MIGRATION_BOUND, migrations

    for name in names:
        await set_ready(kube, name, "False")
    await asyncio.sleep(0.5)  # the CCM's node cache has seen NotReady
    removals = []
    for vm, name in zip(vms, names, strict=True):

        async def remove(vm_id: str = vm["id"]) -> None:
            await xo.delete_vm(vm_id)

        async def deleted(name: str = name) -> bool:
            return await node_or_none(kube, name) is None

        removals.append(await timed(remove, deleted, within=20))
    report(record_property, "VM removal->node deleted (deletionConfirmDelay 0)", removals)
    for name in names:
        assert (await wait_event(kube, name, "DeletingNode"))["type"] == "Normal"


async def test_a_migration_missed_while_the_event_stream_was_down_is_caught_on_reconnect(
    ccm: CCMDaemon,
    kube: KubeClient,
    xo: FakeXOControlClient,
    nodes: Nodes,
    record_property: Callable[[str, object], None],
) -> None:
    world = await World.create(xo, hosts=2)
    vm = await world.vm(host=0)
    name = await nodes.create("e2e-resync", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    subscribed = await subscription_count(xo)

    # XO drops the stream (a restart, a proxy timeout); the migration happens
    # before the CCM reconnects, so no event ever tells it. The next periodic
    # label sync is 10 minutes away: only the resync on reconnect can catch it.
    async def drop_and_migrate() -> None:
        await xo.drop_event_streams()
        await xo.migrate_vm(vm["id"], host_id=world.host_id(1))

    async def zone_moved() -> bool:
        return labels(await get_node(kube, name)).get(L.ZONE) == world.host_id(1)

    caught = await timed(drop_and_migrate, zone_moved, within=30)
    report(record_property, "stream dropped + migration -> zone label (resync)", [caught])
    assert await subscription_count(xo) >= subscribed + SUBSCRIPTIONS_PER_STREAM


@pytest.mark.timeout(120)
async def test_a_pool_disconnect_storm_deletes_no_node(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=2)
    vm_ids = await xo.populate(count=STORM_NODES, pool_id=world.pool_id)
    names = await asyncio.gather(
        *(
            nodes.create(
                "e2e-storm",
                uninitialized=False,
                ready="False",
                provider_id=provider_id(world.pool_id, vm_id),
                labels={L.REGION: world.pool_id},
            )
            for vm_id in vm_ids
        )
    )
    metrics = await ccm.metrics()
    kept_before = lifecycle_results(metrics, "keep-uncertain")
    deletions_before = lifecycle_results(metrics, "delete-node")

    disconnected_at = time.monotonic()
    await xo.disconnect_pool(world.pool_id)
    try:
        # Every VM answers 404 and every node is NotReady: with no confirmation
        # delay, only the pool check stands between them and deletion. Several
        # lifecycle passes (1 s apart) see them all and keep them all.
        async def several_passes() -> bool:
            kept = lifecycle_results(await ccm.metrics(), "keep-uncertain")
            return kept >= kept_before + 3 * STORM_NODES

        await until(several_passes, within=60, every=0.25)
        # ...and at least three periods of wall time, whatever else the cluster holds.
        await asyncio.sleep(max(0.0, disconnected_at + 3.5 - time.monotonic()))
        listed = await kube.request("GET", "/api/v1/nodes")
        present = {n["metadata"]["name"] for n in listed["items"]}
        assert set(names) <= present, sorted(set(names) - present)
        assert lifecycle_results(await ccm.metrics(), "delete-node") == deletions_before
        assert not await node_events(kube, names[0], reason="DeletingNode")
    finally:
        await xo.reconnect_pool(world.pool_id)
    await asyncio.sleep(1.5)
    for name in names:
        assert await node_or_none(kube, name) is not None
