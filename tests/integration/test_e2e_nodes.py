"""End to end, once as cluster admin and once with the shipped RBAC role:
registration, deletion, the shutdown taint and live migration.

One CCM per identity serves the whole module (pytest runs every ``[admin]``
test, stops that CCM, then every ``[serviceaccount]`` test); each test has
its own pool, hosts, VMs and Nodes in the shared fake XO and API server. The
``serviceaccount`` CCM runs with a token bound to nothing but the ClusterRole
of ``deploy/kubernetes/rbac.yaml``: a request the role does not grant fails
the scenario.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.kubernetes import KubeClient
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .controlplane import ControlPlane
from .e2e_fixtures import ccm, fake_xo, nodes, shared_ccm, xo  # noqa: F401 (fixtures)
from .e2e_support import (
    GIB,
    SHUTDOWN_TAINT,
    CCMDaemon,
    Nodes,
    SharedCCM,
    World,
    audit_by,
    labels,
    node_events,
    provider_id,
    report,
    set_ready,
    taints,
    timed,
    wait_event,
    wait_gone,
    wait_initialized,
    wait_node,
)
from .kube import get_node

pytestmark = pytest.mark.integration

#: The lifecycle every second; label sync only by XO events (the periodic pass
#: is far away, so a fast reaction can only come from the event stream).
FLAGS = ("--node-monitor-period=1s", "--node-status-update-frequency=10m")
CONFIG = "deletionConfirmDelay: 1\n"
#: Issue 4: labels follow a live migration within 5 s with XO events on.
MIGRATION_BOUND = 5.0


@pytest.fixture(scope="module", params=["admin", "serviceaccount"])
def identity(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_new_node_gets_its_vm_identity_labels_addresses_and_a_synced_event(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1, pool_name="Lab Pool (e2e)", host_names=["xcp hôte-a"])
    vm = await world.vm(name_label="E2E Node #1", cpus=2, memory=4 * GIB)
    name = await nodes.create("e2e-reg", system_uuid=vm["id"])

    node = await wait_initialized(kube, name)

    assert node["spec"]["providerID"] == provider_id(world.pool_id, vm["id"])
    expected = {
        L.INSTANCE_TYPE: "2vCPU-4GB",
        L.INSTANCE_TYPE_BETA: "2vCPU-4GB",
        L.REGION: world.pool_id,
        L.REGION_BETA: world.pool_id,
        L.ZONE: world.host_id(0),
        L.ZONE_BETA: world.host_id(0),
        L.VM_NAME_LABEL: "E2E-Node--1",
        L.POOL_ID: world.pool_id,
        L.POOL_NAME_LABEL: "Lab-Pool--e2e",
        L.HOST_ID: world.host_id(0),
        L.HOST_NAME_LABEL: "xcp-h-te-a",  # ASCII only: the API server refuses the rest
    }
    assert {key: labels(node).get(key) for key in expected} == expected
    assert L.UNINITIALIZED_TAINT_KEY not in taints(node)
    assert node["status"]["addresses"] == [
        {"type": "ExternalIP", "address": vm["mainIpAddress"]},
        {"type": "Hostname", "address": name},
    ]
    synced = await wait_event(kube, name, "Synced")
    assert synced["type"] == "Normal"
    assert synced["message"] == "Node synced successfully"
    # As the Go CCM v1.1.0 records it (measured): the component alone, no host.
    assert synced["source"] == {"component": "cloud-node-controller"}
    assert synced["reportingComponent"] == "cloud-node-controller"
    assert not synced.get("reportingInstance")
    assert synced["involvedObject"]["uid"] == node["metadata"]["uid"]


async def test_a_not_ready_node_whose_vm_was_deleted_is_deleted_with_an_event(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-del", system_uuid=vm["id"])
    await wait_initialized(kube, name)

    await set_ready(kube, name, "False")
    await xo.delete_vm(vm["id"])

    await wait_gone(kube, name, within=20)
    deleting = await wait_event(kube, name, "DeletingNode")
    assert deleting["type"] == "Normal"
    assert deleting["source"]["component"] == "cloud-node-lifecycle-controller"
    assert not await node_events(kube, name, reason="DeletingNodeFailed")


async def test_a_not_ready_node_whose_vm_is_halted_is_tainted_until_ready_again(
    ccm: CCMDaemon, kube: KubeClient, xo: FakeXOControlClient, nodes: Nodes
) -> None:
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-shut", system_uuid=vm["id"])
    await wait_initialized(kube, name)

    await set_ready(kube, name, "False")
    await xo.stop_vm(vm["id"])
    node = await wait_node(kube, name, lambda n: SHUTDOWN_TAINT in taints(n))
    assert taints(node)[SHUTDOWN_TAINT]["effect"] == "NoSchedule"
    # A halted VM's $container is its pool: never written as the zone or host.
    assert labels(node)[L.ZONE] == world.host_id(0)
    assert labels(node)[L.HOST_ID] == world.host_id(0)

    await xo.start_vm(vm["id"], host_id=world.host_id(0))
    await set_ready(kube, name, "True")
    await wait_node(kube, name, lambda n: SHUTDOWN_TAINT not in taints(n))


async def test_live_migrations_move_zone_and_host_labels_and_keep_the_first_host(
    ccm: CCMDaemon,
    kube: KubeClient,
    xo: FakeXOControlClient,
    nodes: Nodes,
    identity: str,
    record_property: Callable[[str, object], None],
) -> None:
    world = await World.create(xo, hosts=3)
    vm = await world.vm(host=0)
    name = await nodes.create("e2e-mig", system_uuid=vm["id"])
    await wait_initialized(kube, name)

    samples = []
    previous = 0
    for target in (1, 2, 0, 1):
        host = world.host_id(target)

        async def migrate(host: str = host) -> None:
            await xo.migrate_vm(vm["id"], host_id=host)

        async def zone_moved(host: str = host) -> bool:
            return labels(await get_node(kube, name)).get(L.ZONE) == host

        samples.append(await timed(migrate, zone_moved, within=20))
        node_labels = labels(await get_node(kube, name))
        assert node_labels[L.ZONE_BETA] == host
        assert node_labels[L.HOST_ID] == host
        assert node_labels[L.HOST_NAME_LABEL] == world.hosts[target]["name_label"]
        # The first host only, however many migrations follow.
        assert node_labels[L.ORIGINAL_HOST_ID] == world.host_id(0)
        move = f"old={world.host_id(previous)}, new={host}"
        zone_changed = await wait_event(
            kube, name, "NodeZoneChanged", within=10, match=lambda e, m=move: m in e["message"]
        )
        assert zone_changed["type"] == "Warning"
        previous = target

    report(record_property, f"migration->zone label ({identity})", samples)
    assert max(samples) < MIGRATION_BOUND, samples


async def test_the_service_account_did_the_work_and_was_never_refused(
    ccm: CCMDaemon, shared_ccm: SharedCCM, control_plane: ControlPlane, identity: str
) -> None:
    """Last of the module: every request the scenarios above made the
    ``serviceaccount`` CCM send was allowed by the shipped ClusterRole."""
    if identity != "serviceaccount":
        pytest.skip("the admin identity is allowed everything")
    requests = audit_by(control_plane.audit_log, shared_ccm.username)
    refused = sorted({r for r in requests if r[2] in (401, 403)})
    assert not refused, refused
    done = {(verb, resource) for verb, resource, code in requests if code < 300}
    for needed in [
        ("list", "nodes"),
        ("watch", "nodes"),
        ("patch", "nodes"),
        ("patch", "nodes/status"),
        ("delete", "nodes"),
        ("create", "events"),
        ("update", "coordination.k8s.io/leases"),
    ]:
        assert needed in done, (needed, sorted(done))
