"""The kubelet serving CSR approver end to end (issue 27, item 3): the console script
with ``--controllers=*,cloud-node-csr-approval`` against the fake XO over HTTP and the
real kube-apiserver, real PEM requests filed by the node's own identity (a client
certificate ``system:node:<name>`` of the cluster CA), as kubelets with
``serverTLSBootstrap: true`` file them.

One CCM per identity serves the module: ``admin``, and a ServiceAccount bound to
nothing but rbac.yaml (the CSR approver's ClusterRole included), whose every
request must have been allowed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.kubernetes import KubeClient
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .controlplane import ControlPlane
from .e2e_fixtures import ccm, fake_xo, nodes, shared_ccm, xo  # noqa: F401 (fixtures)
from .e2e_support import (
    CCMDaemon,
    Nodes,
    SharedCCM,
    World,
    audit_by,
    node_events,
    wait_initialized,
)
from .kubelet_csr import (
    CSRS,
    allow_nodes_to_request,
    conditions,
    file_request,
    kubelet_client,
    serving_request,
)
from .waiting import until

pytestmark = pytest.mark.integration

FLAGS = ("--controllers=*,cloud-node-csr-approval", "--node-status-update-frequency=10m")
CONFIG = ""
IP = "10.30.0.5"
RSA_SERVING = ("digital signature", "key encipherment", "server auth")
PENDING = "KubeletServingCSRPending"


@pytest.fixture(scope="module", params=["admin", "serviceaccount"])
def identity(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Kubelet:
    """Node ``name``'s kubelet, as far as certificates go."""

    def __init__(self, kube: KubeClient, client: KubeClient, name: str) -> None:
        self.kube = kube
        self.client = client
        self.name = name
        self.filed: list[str] = []

    async def request(self, *, usages: tuple[str, ...] = RSA_SERVING, **fields: Any) -> str:
        csr = f"csr-{self.name}-{uuid.uuid4().hex[:6]}"
        self.filed.append(csr)
        await file_request(self.client, csr, serving_request(self.name, **fields), usages=usages)
        return csr

    async def csr(self, name: str) -> dict[str, Any]:
        return await self.kube.request("GET", f"{CSRS}/{name}")

    async def approved(self, name: str, within: float = 20.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def done() -> bool:
            found[:] = [await self.csr(name)]
            return "Approved" in conditions(found[0])

        await until(done, within=within, every=0.1)
        return found[0]

    async def pending_events(self, csr: str, within: float = 20.0) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        async def said() -> bool:
            events = await node_events(self.kube, self.name, reason=PENDING)
            found[:] = [e for e in events if f" {csr} " in e["message"]]
            return bool(found)

        await until(said, within=within, every=0.1)
        return found


@pytest.fixture
async def kubelets(kube: KubeClient, control_plane: ControlPlane) -> AsyncIterator[list[Kubelet]]:
    await allow_nodes_to_request(kube)
    made: list[Kubelet] = []

    async def cleanup() -> None:
        for kubelet in made:
            await kubelet.client.aclose()
            for name in kubelet.filed:
                await kube.request("DELETE", f"{CSRS}/{name}")

    try:
        yield made
    finally:
        await cleanup()


async def a_node(
    kube: KubeClient,
    control_plane: ControlPlane,
    xo: FakeXOControlClient,
    nodes: Nodes,
    kubelets: list[Kubelet],
    *,
    initialized: bool = True,
) -> tuple[Kubelet, World, str]:
    """A node of a VM reporting ``IP`` (initialized by the CCM unless told otherwise:
    then its VM id is returned, not yet in XO)."""
    world = await World.create(xo, hosts=1)
    vm_id = str(uuid.uuid4())
    if initialized:
        await world.vm(vm_id=vm_id, addresses={"0/ipv4/0": IP})
    name = await nodes.create("e2e-csr", system_uuid=vm_id)
    if initialized:
        await wait_initialized(kube, name)
    kubelet = Kubelet(kube, await kubelet_client(control_plane, name), name)
    kubelets.append(kubelet)
    return kubelet, world, vm_id


async def test_a_kubelets_serving_request_is_approved(
    ccm: CCMDaemon,
    kube: KubeClient,
    control_plane: ControlPlane,
    xo: FakeXOControlClient,
    nodes: Nodes,
    kubelets: list[Kubelet],
) -> None:
    kubelet, _, _ = await a_node(kube, control_plane, xo, nodes, kubelets)
    rsa = await kubelet.request(dns=[kubelet.name], ips=[IP])
    ecdsa = await kubelet.request(
        dns=[kubelet.name], ips=[IP], usages=("digital signature", "server auth")
    )

    for name in (rsa, ecdsa):
        approved = conditions(await kubelet.approved(name))["Approved"]
        assert approved["reason"] == "XenOrchestraCCMApproved"
        assert kubelet.name in approved["message"]
    assert await node_events(kube, kubelet.name, reason=PENDING) == []


@pytest.mark.parametrize(
    ("fields", "usages", "why"),
    [
        pytest.param(
            {"ips": [IP], "dns": ["kubernetes.default.svc"]},
            RSA_SERVING,
            "DNS name(s) kubernetes.default.svc are not the node's",
            id="another-name",
        ),
        pytest.param(
            {"ips": [IP]},
            ("digital signature", "key encipherment", "client auth"),
            "are not a serving certificate's",
            id="client-usages",
        ),
        pytest.param(
            {"ips": [IP], "common_name": "system:node:another"},
            RSA_SERVING,
            "subject CN=system:node:another, O=system:nodes is not",
            id="another-nodes-subject",
        ),
        pytest.param(
            {"ips": [IP], "organizations": ["system:masters"]},
            RSA_SERVING,
            "O=system:masters is not",
            id="another-organization",
        ),
        pytest.param(
            {"ips": [IP], "emails": ["root@example.com"]},
            RSA_SERVING,
            "names other than DNS names and IPs: email:root@example.com",
            id="an-email-address",
        ),
    ],
)
async def test_a_request_that_is_not_the_nodes_stays_pending_with_one_warning(
    ccm: CCMDaemon,
    kube: KubeClient,
    control_plane: ControlPlane,
    xo: FakeXOControlClient,
    nodes: Nodes,
    kubelets: list[Kubelet],
    fields: dict[str, Any],
    usages: tuple[str, ...],
    why: str,
) -> None:
    kubelet, _, _ = await a_node(kube, control_plane, xo, nodes, kubelets)
    name = await kubelet.request(usages=usages, **fields)

    (event,) = await kubelet.pending_events(name)
    await asyncio.sleep(1.5)  # reviewed again on every watch event: said once only
    assert event["type"] == "Warning" and why in event["message"]
    (again,) = await kubelet.pending_events(name)
    assert again["count"] == 1
    assert conditions(await kubelet.csr(name)) == {}  # pending: neither approved nor denied


async def test_an_ip_the_vm_does_not_report_yet_waits_then_is_approved(
    ccm: CCMDaemon,
    kube: KubeClient,
    control_plane: ControlPlane,
    xo: FakeXOControlClient,
    nodes: Nodes,
    kubelets: list[Kubelet],
) -> None:
    kubelet, world, vm_id = await a_node(kube, control_plane, xo, nodes, kubelets)
    name = await kubelet.request(dns=[kubelet.name], ips=[IP, "10.30.0.99"])

    (event,) = await kubelet.pending_events(name)
    assert f"IP address(es) 10.30.0.99 are not among VM {vm_id}'s ({IP})" in event["message"]
    await asyncio.sleep(2.5)  # reviewed again 0.5, 1, 2 s later: the same reason, not said again
    (again,) = await kubelet.pending_events(name)
    assert again["count"] == 1
    assert conditions(await kubelet.csr(name)) == {}

    await world.set_addresses(vm_id, {"0/ipv4/0": IP, "1/ipv4/0": "10.30.0.99"})  # NIC up
    await kubelet.approved(name, within=30)


async def test_a_request_filed_before_the_node_is_initialized_is_approved_after(
    ccm: CCMDaemon,
    kube: KubeClient,
    control_plane: ControlPlane,
    xo: FakeXOControlClient,
    nodes: Nodes,
    kubelets: list[Kubelet],
) -> None:
    kubelet, world, vm_id = await a_node(
        kube, control_plane, xo, nodes, kubelets, initialized=False
    )
    name = await kubelet.request(dns=[kubelet.name], ips=[IP])
    (event,) = await kubelet.pending_events(name)
    assert "is not initialized yet" in event["message"]

    await world.vm(vm_id=vm_id, addresses={"0/ipv4/0": IP})  # the VM XO did not know yet
    await wait_initialized(kube, kubelet.name)
    await kubelet.approved(name, within=30)


async def test_the_service_account_approved_with_the_shipped_rbac_and_was_never_refused(
    ccm: CCMDaemon,
    shared_ccm: SharedCCM,
    control_plane: ControlPlane,
    identity: str,
) -> None:
    """Last of the module: the ``serviceaccount`` CCM listed, watched and approved
    CSRs with rbac.yaml's grants alone."""
    if identity != "serviceaccount":
        pytest.skip("the admin identity is allowed everything")
    requests = audit_by(control_plane.audit_log, shared_ccm.username)
    refused = sorted({r for r in requests if r[2] in (401, 403)})
    assert not refused, refused
    done = {(verb, resource) for verb, resource, code in requests if code < 300}
    for needed in [
        ("list", "certificates.k8s.io/certificatesigningrequests"),
        ("watch", "certificates.k8s.io/certificatesigningrequests"),
        ("get", "certificates.k8s.io/certificatesigningrequests"),
        ("update", "certificates.k8s.io/certificatesigningrequests/approval"),
    ]:
        assert needed in done, (needed, sorted(done))
