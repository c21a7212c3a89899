"""The shipped RBAC grants what the code uses, no more: proved from the API
server's own audit log while the CCM's Kubernetes code paths run under a token
bound to nothing but deploy/kubernetes/rbac.yaml's roles (its ClusterRoles, the
CSR approver's included, its namespaced Roles for the Lease and events.k8s.io,
and the built-in roles of delegated authentication).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes import (
    ApiError,
    KubeClient,
    KubernetesEventRecorder,
    KubernetesNodeStore,
    LeaseLeaderElector,
    connect,
    record_client_check_failure,
)
from adapters.kubernetes.csr import KubernetesCertificateRequests
from adapters.observability.delegated_auth import (
    ANONYMOUS_USER,
    DelegatedAuth,
    Unauthorized,
    client_ca_from_cluster,
)
from domain.errors import ConflictError
from domain.model import AddressType, EventType, NodeAddress, NodeChange
from tests.integration.conftest import ServiceAccountFactory
from tests.integration.controlplane import ControlPlane
from tests.integration.kube import (
    UNINITIALIZED,
    apply_object,
    create_node,
    label_node,
    unique,
)
from tests.integration.kubelet_csr import (
    CSRS,
    allow_nodes_to_request,
    file_request,
    kubelet_client,
    serving_request,
)
from tests.integration.waiting import until

from .chart import manifest, render, role_rules

Grant = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


#: What the built-in roles bound by the manifest grant, as far as the code uses it.
BUILTIN = {
    ("authentication.k8s.io", "tokenreviews", "create"),  # system:auth-delegator
    ("authorization.k8s.io", "subjectaccessreviews", "create"),  # system:auth-delegator
    ("", "configmaps", "get"),  # extension-apiserver-authentication-reader
}
LEASE = "cloud-controller-manager-xenorchestra"


def rbac_objects(docs: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, Any]]:
    """Roles and bindings, comparable (kind, namespaced name, rules or roleRef)."""
    out = []
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            out.append(
                (
                    d["kind"],
                    f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}",
                    d["rules"],
                )
            )
        elif d["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            out.append(
                (
                    d["kind"],
                    f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}",
                    d["roleRef"],
                )
            )
    return sorted(out, key=lambda o: (o[0], o[1]))


CSR_APPROVAL_OBJECTS = ":csr-approval"


def test_the_chart_grants_exactly_what_the_plain_manifest_grants(helm: Path) -> None:
    """With the CSR approver, all of rbac.yaml; by default, all but the approver's
    ClusterRole and binding (the chart renders them only when it is enabled)."""
    shipped = rbac_objects(manifest("rbac.yaml"))
    assert rbac_objects(render(helm, "csr-approval")) == shipped
    assert rbac_objects(render(helm, "default")) == [
        o for o in shipped if not o[1].endswith(CSR_APPROVAL_OBJECTS)
    ]


async def bind_like_the_manifest(kube: KubeClient, account: str) -> None:
    """The manifest's roles, and its bindings re-made for ``account`` only."""
    await apply_object(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": "kube-system"},
        },
    )
    for doc in manifest("rbac.yaml"):
        if doc["kind"] in ("ClusterRole", "Role"):
            await apply_object(kube, doc)
        elif doc["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            meta = {**doc["metadata"], "name": f"{doc['metadata']['name']}:{account}"}
            subjects = [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}]
            await apply_object(kube, {**doc, "metadata": meta, "subjects": subjects})


def grants_used(events: Iterable[Mapping[str, Any]], username: str) -> dict[Grant, set[int]]:
    """The (apiGroup, resource, verb) of each resource request ``username`` made,
    with the HTTP status codes it got."""
    used: dict[Grant, set[int]] = {}
    for event in events:
        ref = event.get("objectRef")
        if event.get("user", {}).get("username") != username or not ref:
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        grant = (ref.get("apiGroup", ""), resource, event["verb"])
        used.setdefault(grant, set()).add(int(event.get("responseStatus", {}).get("code", 0)))
    return used


#: Grants the API server checks inside a request rather than as one: the approval
#: update of a kubelet serving CSR is refused (403) without ``approve`` on its signer,
#: so that update answered 200 proves the grant was used.
IMPLIED = {
    ("certificates.k8s.io", "signers", "approve"): (
        "certificates.k8s.io",
        "certificatesigningrequests/approval",
        "update",
    ),
}


async def exercise_the_csr_approver(kube: KubeClient, ccm: KubeClient, plane: ControlPlane) -> None:
    """The CSR approver's requests: list + watch (the cache), get + approval update."""
    name, node = unique("audit-csr"), unique("audit-node")
    await allow_nodes_to_request(kube)
    async with await kubelet_client(plane, node) as kubelet:
        await file_request(kubelet, name, serving_request(node, dns=(node,)))
    try:
        async with KubernetesCertificateRequests(ccm) as requests:
            await until(lambda: requests.get(name=name))
            csr = await requests.get(name=name)
            assert csr is not None
            assert await requests.approve(request=csr, reason="Audit", message="audit")
    finally:
        await kube.request("DELETE", f"{CSRS}/{name}")


async def exercise_the_ccm_code_paths(kube: KubeClient, ccm: KubeClient) -> None:
    """Every Kubernetes request the CCM makes, through the adapters it makes them with."""
    name = unique("audit")
    await create_node(kube, name)
    async with KubernetesNodeStore(ccm) as store:  # list, watch
        await until(lambda: store.get(name=name))
        stale = await store.get(name=name)
        assert stale is not None
        assert [n.name for n in await store.list() if n.name == name] == [name]
        await label_node(kube, name, other="writer")
        with pytest.raises(ConflictError):  # patch (409), then get: the re-read
            await store.update(node=stale, change=NodeChange(set_labels={"a": "b"}))
        fresh = await store.get(name=name)
        assert fresh is not None and fresh.resource_version != stale.resource_version
        written = await store.update(  # patch
            node=fresh,
            change=NodeChange(
                provider_id="xenorchestra://pool/vm",
                remove_taint_keys=frozenset({UNINITIALIZED}),
            ),
        )
        written = await store.set_addresses(  # nodes/status patch
            node=written, addresses=(NodeAddress(AddressType.HOSTNAME, name),)
        )

        recorder = KubernetesEventRecorder(ccm)
        for _ in range(2):  # events create, then patch (the repeat)
            await recorder.record(
                node=written,
                type=EventType.NORMAL,
                reason="Synced",
                message="Node synced successfully",
                source="cloud-node-controller",
            )
        assert (recorder.recorded, recorder.failed) == (2, 0)
        env = {"POD_NAME": unique("pod"), "POD_NAMESPACE": "kube-system", "POD_UID": "u"}
        assert await record_client_check_failure(ccm, error="down", environ=env)  # create
        assert await record_client_check_failure(ccm, error="down", environ=env)  # get, update

        auth = DelegatedAuth(authentication=ccm, authorization=ccm)
        with pytest.raises(Unauthorized):  # tokenreviews create
            await auth._review_token("not-a-token")
        allowed, _ = await auth.authorize(ANONYMOUS_USER, "/metrics", "get")  # SAR create
        assert allowed is False
        assert await client_ca_from_cluster(ccm)  # configmaps get

        with contextlib.suppress(ApiError):  # a Lease left by another test expires first
            await kube.request(
                "DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{LEASE}"
            )
        elector = LeaseLeaderElector(
            ccm,
            name=LEASE,
            lease_duration=3.0,
            renew_deadline=2.0,
            retry_period=0.3,
        )
        try:
            async with asyncio.timeout(5):
                await elector.acquire()  # get (404), create
            await asyncio.sleep(0.8)  # renewals: update
            assert elector.is_leader
            await elector.release()  # update
        finally:
            await elector.stop()

        await store.delete(node=written)  # delete
        assert await store.get(name=name) is None


@pytest.mark.integration
async def test_every_verb_the_cluster_role_grants_is_used_by_the_code(
    kube: KubeClient, control_plane: ControlPlane, service_account: ServiceAccountFactory
) -> None:
    granted = role_rules(manifest("rbac.yaml"))
    account = unique("audit-ccm")
    await bind_like_the_manifest(kube, account)
    path = await service_account(name=account)
    username = f"system:serviceaccount:kube-system:{account}"

    ccm = await connect(str(path), name="audit-ccm")
    try:
        await exercise_the_ccm_code_paths(kube, ccm)
        await exercise_the_csr_approver(kube, ccm, control_plane)
    finally:
        await ccm.aclose()

    deadline = time.monotonic() + 10  # the last events may still be on their way
    while True:
        used = grants_used(control_plane.read_audit_log(), username)
        for implied, proof in IMPLIED.items():
            if 200 in used.get(proof, set()):
                used[implied] = {200}
        if granted <= used.keys() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)

    forbidden = sorted(g for g, codes in used.items() if 403 in codes)
    assert not forbidden, f"refused with 403: {forbidden}"
    assert sorted(used.keys() - granted - BUILTIN) == [], "used but not granted"
    assert sorted(granted - used.keys()) == [], "granted but never used by the code"
    assert used.keys() >= BUILTIN, "the built-in roles are bound for nothing"
