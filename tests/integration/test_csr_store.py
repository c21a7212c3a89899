"""The CSR adapter on the real kube-apiserver, beyond its port's contract: only the
kubelet-serving signer's CSRs are read, and approving needs ``approve`` on that very
signer (the least-privilege grant of rbac.yaml is the one the API server checks)."""

from __future__ import annotations

import contextlib

import pytest

from adapters.kubernetes import ApiError, KubeClient, connect
from adapters.kubernetes.csr import KubernetesCertificateRequests
from domain.errors import CertificateRequestError

from .conftest import ServiceAccountFactory
from .controlplane import ControlPlane
from .kube import apply_object, unique
from .kubelet_csr import (
    CSRS,
    KUBELET_SERVING,
    allow_nodes_to_request,
    file_request,
    kubelet_client,
    serving_request,
)
from .waiting import until

pytestmark = pytest.mark.integration


async def test_other_signers_requests_are_never_read(
    kube: KubeClient, control_plane: ControlPlane
) -> None:
    node = unique("worker")
    serving, client = unique("csr-serving"), unique("csr-client")
    await allow_nodes_to_request(kube)
    async with await kubelet_client(control_plane, node) as kubelet:
        await file_request(kubelet, serving, serving_request(node, dns=(node,)))
        await file_request(
            kubelet,
            client,
            serving_request(node),
            usages=("digital signature", "client auth"),
            signer="kubernetes.io/kube-apiserver-client-kubelet",
        )
    try:
        async with KubernetesCertificateRequests(kube) as requests:
            await until(lambda: requests.get(name=serving))
            assert await requests.get(name=client) is None
            assert requests.reflector.lists == 1
    finally:
        for name in (serving, client):
            with contextlib.suppress(ApiError):
                await kube.request("DELETE", f"{CSRS}/{name}")


async def test_approving_needs_approve_on_the_kubelet_serving_signer_itself(
    kube: KubeClient, control_plane: ControlPlane, service_account: ServiceAccountFactory
) -> None:
    """The approver's ClusterRole with ``approve`` on another signer: the API server
    refuses the approval (403), which the adapter reports without approving."""
    role = unique("xoccm-test-csr-wrong-signer")
    await apply_object(
        kube,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {
                    "apiGroups": ["certificates.k8s.io"],
                    "resources": ["certificatesigningrequests"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["certificates.k8s.io"],
                    "resources": ["certificatesigningrequests/approval"],
                    "verbs": ["update"],
                },
                {
                    "apiGroups": ["certificates.k8s.io"],
                    "resources": ["signers"],
                    "resourceNames": ["example.com/another-signer"],
                    "verbs": ["approve"],
                },
            ],
        },
    )
    path = await service_account(name=unique("csr-wrong-signer"), cluster_role=role)
    node, name = unique("worker"), unique("csr")
    await allow_nodes_to_request(kube)
    async with await kubelet_client(control_plane, node) as kubelet:
        await file_request(kubelet, name, serving_request(node, dns=(node,)))
    try:
        async with (
            await connect(str(path), name="csr-wrong-signer") as client,
            KubernetesCertificateRequests(client) as requests,
        ):
            await until(lambda: requests.get(name=name))
            csr = await requests.get(name=name)
            assert csr is not None and csr.signer_name == KUBELET_SERVING
            with pytest.raises(CertificateRequestError, match="403"):
                await requests.approve(request=csr, reason="Test", message="no grant")
        assert "conditions" not in (
            (await kube.request("GET", f"{CSRS}/{name}")).get("status") or {}
        )
    finally:
        await kube.request("DELETE", f"{CSRS}/{name}")
        await kube.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")
