"""Test-side helpers for the real API server: Nodes as kubelet registers them,
manifests, and ServiceAccount identities with minted tokens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from adapters.kubernetes import ApiError, KubeClient
from adapters.kubernetes.convert import format_time

from .controlplane import ControlPlane, write_kubeconfig

UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
REPO_ROOT = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = REPO_ROOT / "deploy" / "kubernetes" / "rbac.yaml"


def unique(prefix: str) -> str:
    """A fresh object name: the control plane is shared by the whole session."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def node_object(
    name: str,
    *,
    uninitialized: bool = True,
    ready: str | None = "True",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, Any]] = (),
    system_uuid: str = "",
    provider_id: str = "",
    addresses: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A Node as a kubelet with ``--cloud-provider=external`` registers it."""
    now = format_time(datetime.now(UTC))
    all_taints = list(taints)
    if uninitialized:
        all_taints.append({"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"})
    spec: dict[str, Any] = {"taints": all_taints}
    if provider_id:
        spec["providerID"] = provider_id
    status: dict[str, Any] = {
        "nodeInfo": {
            "systemUUID": system_uuid,
            "machineID": "",
            "bootID": "",
            "kernelVersion": "",
            "osImage": "",
            "containerRuntimeVersion": "",
            "kubeletVersion": "",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "addresses": list(addresses),
    }
    if ready is not None:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": ready,
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
        "status": status,
    }


async def create_node(kube: KubeClient, name: str, **fields: Any) -> dict[str, Any]:
    """Create a Node (status included: a create keeps it, as kubelet relies on)."""
    return await kube.request("POST", "/api/v1/nodes", body=node_object(name, **fields))


async def get_node(kube: KubeClient, name: str) -> dict[str, Any]:
    return await kube.request("GET", f"/api/v1/nodes/{name}")


async def delete_node(kube: KubeClient, name: str) -> None:
    try:
        await kube.request("DELETE", f"/api/v1/nodes/{name}")
    except ApiError as err:
        if not err.not_found:
            raise


async def label_node(kube: KubeClient, name: str, **labels: str | None) -> dict[str, Any]:
    """Another writer (kubelet, an admin) changes the Node."""
    return await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        body={"metadata": {"labels": labels}},
        content_type="application/merge-patch+json",
    )


_COLLECTIONS = {
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts",
    "Namespace": "/api/v1/namespaces",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
}


async def apply_object(kube: KubeClient, obj: Mapping[str, Any]) -> dict[str, Any]:
    """Create ``obj``, or replace it when it exists (a small ``kubectl apply``)."""
    meta = obj["metadata"]
    collection = _COLLECTIONS[obj["kind"]].format(namespace=meta.get("namespace", ""))
    try:
        return await kube.request("POST", collection, body=dict(obj))
    except ApiError as err:
        if not err.already_exists:
            raise
    path = f"{collection}/{meta['name']}"
    current = await kube.request("GET", path)
    replacement = {
        **obj,
        "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]},
    }
    return await kube.request("PUT", path, body=replacement)


def load_manifest(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


async def apply_manifest(kube: KubeClient, path: Path) -> list[dict[str, Any]]:
    docs = load_manifest(path)
    return [await apply_object(kube, doc) for doc in docs]


async def mint_token(
    kube: KubeClient, *, namespace: str, service_account: str, seconds: int = 3600
) -> str:
    """A bound token for the ServiceAccount, from the TokenRequest API."""
    answer = await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    return str(answer["status"]["token"])


async def service_account_kubeconfig(
    kube: KubeClient,
    control_plane: ControlPlane,
    *,
    name: str,
    namespace: str = "kube-system",
    cluster_role: str | None = None,
    path: Path | None = None,
) -> Path:
    """A kubeconfig for ServiceAccount ``namespace/name`` (created if needed).

    With ``cluster_role``, a ClusterRoleBinding ``<name>`` grants it that role
    (and nothing else); without, the SA has whatever is already bound to it.
    """
    await apply_object(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        },
    )
    if cluster_role is not None:
        await apply_object(
            kube,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{name}-{namespace}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": cluster_role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )
    token = await mint_token(kube, namespace=namespace, service_account=name)
    target = path or control_plane.workdir / f"sa-{namespace}-{name}.kubeconfig"
    return write_kubeconfig(
        target,
        server=control_plane.server,
        ca_file=control_plane.ca_file,
        user=f"system:serviceaccount:{namespace}:{name}",
        token=token,
    )


async def grant_shipped_roles(
    kube: KubeClient, *, account: str, lease: str, csr_approval: bool = False
) -> None:
    """Bind ServiceAccount ``kube-system/account`` to the namespaced Roles of the
    shipped RBAC (rbac.yaml), made for Lease ``lease`` as the chart makes them for
    ``leaderElection.resourceName``: the test CCMs each lead their own Lease. With
    ``csr_approval``, to the CSR approver's ClusterRole too (as its binding does)."""
    shipped = "system:xenorchestra-cloud-controller-manager:"
    for doc in load_manifest(RBAC_MANIFEST):
        name = doc["metadata"]["name"]
        if csr_approval and doc["kind"] == "ClusterRoleBinding" and name.endswith(":csr-approval"):
            subjects = [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}]
            meta = {**doc["metadata"], "name": f"{name}:{account}"}
            await apply_object(kube, {**doc, "metadata": meta, "subjects": subjects})
        if doc["kind"] == "Role" and name.startswith(shipped):
            rules = [
                {**rule, "resourceNames": [lease, f"{lease}-deletion-breaker"]}
                if rule.get("resourceNames")
                else rule
                for rule in doc["rules"]
            ]
            role = {**doc, "metadata": {**doc["metadata"], "name": f"{name}:{account}"}}
            await apply_object(kube, {**role, "rules": rules})
        elif doc["kind"] == "RoleBinding" and name.startswith(shipped):
            meta = {**doc["metadata"], "name": f"{name}:{account}"}
            ref = doc["roleRef"]
            if ref["kind"] == "Role" and ref["name"].startswith(shipped):
                ref = {**ref, "name": f"{ref['name']}:{account}"}
            subjects = [{"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}]
            await apply_object(
                kube, {**doc, "metadata": meta, "roleRef": ref, "subjects": subjects}
            )
