"""The shipped RBAC (deploy/kubernetes/rbac.yaml) is enough, and no more than enough.

Everything runs as the ServiceAccount the manifest creates, with a token from
the TokenRequest API, against an API server that authorizes with RBAC only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from adapters.kubernetes import (
    ApiError,
    KubeClient,
    KubernetesEventRecorder,
    KubernetesNodeStore,
    LeaseLeaderElector,
    connect,
    record_client_check_failure,
)
from adapters.kubernetes.convert import node_from_object
from domain.errors import ConflictError
from domain.model import AddressType, EventType, NodeAddress, NodeChange

from .conftest import ServiceAccountFactory
from .controlplane import ControlPlane, write_kubeconfig
from .kube import (
    RBAC_MANIFEST,
    UNINITIALIZED,
    apply_manifest,
    create_node,
    get_node,
    label_node,
    mint_token,
    node_object,
    unique,
)
from .waiting import until

pytestmark = pytest.mark.integration

SA_NAME = "xenorchestra-cloud-controller-manager"
SA_NAMESPACE = "kube-system"


@pytest.fixture
async def ccm(kube: KubeClient, control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """A client authenticated as the manifest's ServiceAccount, nothing else."""
    await apply_manifest(kube, RBAC_MANIFEST)
    token = await mint_token(kube, namespace=SA_NAMESPACE, service_account=SA_NAME)
    path = write_kubeconfig(
        control_plane.workdir / f"{unique('ccm')}.kubeconfig",
        server=control_plane.server,
        ca_file=control_plane.ca_file,
        user=f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}",
        token=token,
    )
    client = await connect(str(path), name="ccm-sa")
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_node_store_works_with_the_shipped_role(
    kube: KubeClient, ccm: KubeClient
) -> None:
    name = unique("rbac")
    await create_node(kube, name)
    async with KubernetesNodeStore(ccm) as store:  # list + watch
        await until(lambda: store.synced)
        await until(lambda: store.get(name=name))
        node = await store.get(name=name)
        assert node is not None
        await label_node(kube, name, other="writer")
        with pytest.raises(ConflictError):  # the re-read after a 409 is a GET
            await store.update(node=node, change=NodeChange(set_labels={"a": "b"}))
        fresh = await store.get(name=name)
        assert fresh is not None
        written = await store.update(  # patch
            node=fresh,
            change=NodeChange(
                provider_id="xenorchestra://pool/vm",
                set_labels={"topology.kubernetes.io/region": "pool"},
                remove_taint_keys=frozenset({UNINITIALIZED}),
            ),
        )
        written = await store.set_addresses(  # nodes/status patch
            node=written, addresses=(NodeAddress(AddressType.HOSTNAME, name),)
        )
        assert (await get_node(kube, name))["status"]["addresses"] == [
            {"type": "Hostname", "address": name}
        ]
        await store.delete(node=written)  # delete
        with pytest.raises(ApiError) as gone:
            await get_node(kube, name)
        assert gone.value.not_found


async def test_events_work_with_the_shipped_role(kube: KubeClient, ccm: KubeClient) -> None:
    target = node_from_object(await create_node(kube, unique("rbac-ev")))
    recorder = KubernetesEventRecorder(ccm)
    for _ in range(2):  # create, then patch
        await recorder.record(
            node=target,
            type=EventType.NORMAL,
            reason="Synced",
            message="Node synced successfully",
            source="cloud-node-controller",
        )
    assert (recorder.recorded, recorder.failed) == (2, 0)
    env = {"POD_NAME": unique("pod"), "POD_NAMESPACE": SA_NAMESPACE, "POD_UID": "u"}
    assert await record_client_check_failure(ccm, error="down", environ=env)  # create
    assert await record_client_check_failure(ccm, error="down", environ=env)  # get + update


#: The Lease the shipped Role grants (the Go manifests' --leader-elect-resource-name).
LEASE = "cloud-controller-manager-xenorchestra"


async def test_leader_election_works_with_the_shipped_role(
    kube: KubeClient, ccm: KubeClient
) -> None:
    name = LEASE
    elector = LeaseLeaderElector(
        ccm,
        name=name,
        namespace=SA_NAMESPACE,
        lease_duration=3.0,
        renew_deadline=2.0,
        retry_period=0.5,
    )
    path = f"/apis/coordination.k8s.io/v1/namespaces/{SA_NAMESPACE}/leases/{name}"
    try:
        async with asyncio.timeout(5):
            await elector.acquire()  # get (404), create
        first = (await kube.request("GET", path))["spec"]["renewTime"]
        await asyncio.sleep(1.5)  # renewals: update
        assert elector.is_leader
        assert (await kube.request("GET", path))["spec"]["renewTime"] != first
        await elector.release()  # update
        assert "holderIdentity" not in (await kube.request("GET", path))["spec"]
    finally:
        await elector.stop()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/api/v1/nodes", node_object("forbidden"), id="create-nodes"),
        pytest.param("GET", "/api/v1/namespaces/kube-system/secrets", None, id="read-secrets"),
        pytest.param(
            "POST",
            "/api/v1/namespaces/kube-system/serviceaccounts",
            {"metadata": {"name": "x"}},
            id="create-serviceaccounts",
        ),
        pytest.param("GET", "/api/v1/namespaces/default/pods", None, id="list-pods"),
        pytest.param(
            "DELETE",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{LEASE}",
            None,
            id="delete-the-lease",
        ),
        pytest.param(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            None,
            id="leases-elsewhere",
        ),
        pytest.param(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/default/events",
            {"metadata": {"name": "x"}},
            id="events-k8s-io-elsewhere",
        ),
    ],
)
async def test_the_shipped_role_grants_nothing_else(
    ccm: KubeClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with pytest.raises(ApiError) as refused:
        await ccm.request(method, path, body=body)
    assert refused.value.status == 403


async def test_node_updates_by_put_are_not_granted(kube: KubeClient, ccm: KubeClient) -> None:
    name = unique("rbac-put")
    created = await create_node(kube, name)
    with pytest.raises(ApiError) as refused:
        await ccm.request("PUT", f"/api/v1/nodes/{name}", body=created)
    assert refused.value.status == 403


async def test_without_the_binding_the_store_cannot_even_list(
    kube: KubeClient, service_account: ServiceAccountFactory
) -> None:
    path = await service_account(name=unique("unbound"), namespace="default")
    async with await connect(str(path), name="unbound") as client:
        store = KubernetesNodeStore(client)
        async with store:
            await until(lambda: store.reflector.last_error is not None)
        assert store.reflector.last_error is not None
        assert store.reflector.last_error.status == 403
        assert not store.synced


async def test_a_service_account_bound_to_the_role_can_list_nodes(
    kube: KubeClient, service_account: ServiceAccountFactory
) -> None:
    await apply_manifest(kube, RBAC_MANIFEST)
    path = await service_account(
        name=unique("bound"), namespace="default", cluster_role="system:" + SA_NAME
    )
    async with await connect(str(path), name="bound") as client:
        answer = await client.request("GET", "/api/v1/nodes")
    assert answer["kind"] == "NodeList"


async def test_the_identity_cannot_write_another_lease(kube: KubeClient, ccm: KubeClient) -> None:
    """Node heartbeats and other controllers' Leases are out of reach: only the
    leader Lease and its -deletion-breaker twin may be read or written."""
    other = unique("someone-elses-lease")
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": other, "namespace": "kube-system"},
        "spec": {"holderIdentity": "someone"},
    }
    created = await kube.request("POST", path, body=lease)
    for method, body in (("GET", None), ("PUT", created), ("DELETE", None)):
        with pytest.raises(ApiError) as refused:
            await ccm.request(method, f"{path}/{other}", body=body)
        assert refused.value.status == 403, method
    node_lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/any-node"
    with pytest.raises(ApiError) as refused:
        await ccm.request("GET", node_lease)
    assert refused.value.status == 403
    breaker = f"{path}/{LEASE}-deletion-breaker"
    with contextlib.suppress(ApiError):
        await kube.request("DELETE", breaker)
    await ccm.request(
        "POST", path, body={**lease, "metadata": {"name": f"{LEASE}-deletion-breaker"}}
    )
    assert (await ccm.request("GET", breaker))["spec"]["holderIdentity"] == "someone"
    await kube.request("DELETE", breaker)


def test_the_manifest_asks_for_exactly_the_verbs_the_code_uses() -> None:
    docs = [d for d in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if d]
    granted = {
        (
            d["kind"],
            d["metadata"].get("namespace", ""),
            group,
            resource,
            tuple(rule.get("resourceNames", ())),
        ): set(rule["verbs"])
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
        for rule in d["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    lease_names = (LEASE, f"{LEASE}-deletion-breaker")
    assert granted == {
        ("ClusterRole", "", "", "nodes", ()): {"get", "list", "watch", "patch", "delete"},
        ("ClusterRole", "", "", "nodes/status", ()): {"patch"},
        ("ClusterRole", "", "", "events", ()): {"create", "patch"},
        ("Role", "kube-system", "events.k8s.io", "events", ()): {"get", "create", "update"},
        ("Role", "kube-system", "coordination.k8s.io", "leases", lease_names): {"get", "update"},
        ("Role", "kube-system", "coordination.k8s.io", "leases", ()): {"create"},
        # the CSR approver's ClusterRole (cloud-node-csr-approval, off by default)
        ("ClusterRole", "", "certificates.k8s.io", "certificatesigningrequests", ()): {
            "get",
            "list",
            "watch",
        },
        ("ClusterRole", "", "certificates.k8s.io", "certificatesigningrequests/approval", ()): {
            "update"
        },
        (
            "ClusterRole",
            "",
            "certificates.k8s.io",
            "signers",
            ("kubernetes.io/kubelet-serving",),
        ): {"approve"},
    }
