"""Installing the CCM on the node cluster the ways an operator does.

- the plain manifests of deploy/kubernetes, unchanged (their image,
  ``xenorchestra-cloud-controller-manager:0.1.0``, is the name scripts/build-image
  gives the image, present in containerd: ``IfNotPresent`` pulls nothing), and the
  Secret made with ``kubectl create secret generic --from-file=config.yaml``;
- the Helm chart, ``helm install`` with the Go install guide's values;
- the Go CCM's own install (names, args, Secret layout, RBAC of
  tests/data/go-ccm-deploy.md) with only its image changed.

Each installer returns what :func:`uninstall` needs to remove it again.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.migration.go_install import env_secret, go_install, go_manifest_args, go_values
from tests.tools import REPO_ROOT

from .cluster import NODE_NAME, UNINITIALIZED, NodeCluster, wait_for
from .xo import TOKEN

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
CHART = REPO_ROOT / "deploy" / "helm" / "xenorchestra-cloud-controller-manager"
NAME = "xenorchestra-cloud-controller-manager"
NAMESPACE = "kube-system"
SELECTOR = f"app.kubernetes.io/name={NAME}"
LEASE = "cloud-controller-manager-xenorchestra"
#: The image tag of the manifests, the chart's appVersion and scripts/build-image's default.
IMAGE = f"{NAME}:0.1.0"
#: Seconds from ``kubectl apply`` (or ``helm install``) to an initialized Node, per case.
TIMINGS: dict[str, float] = {}


@dataclass
class Install:
    """What was installed: kubectl-applied files or objects, or a Helm release."""

    kind: str
    files: list[Path] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    release: str | None = None
    helm: Path | None = None
    applied_at: float = 0.0


def config_text(cluster: NodeCluster, **extra: Any) -> str:
    """The cloud config of the Go install guide (url, insecure, token), plus ``extra``."""
    config = {"url": cluster.xo_url, "insecure": False, "token": TOKEN, **extra}
    return yaml.safe_dump(config)


def create_config_secret(cluster: NodeCluster, **extra: Any) -> None:
    path = cluster.workdir / "config.yaml"
    path.write_text(config_text(cluster, **extra))
    cluster.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", NAME, f"--from-file=config.yaml={path}"
    )
    path.unlink()


def install_manifests(
    cluster: NodeCluster, deployment: Path, *, config: dict[str, Any] | None = None
) -> Install:
    """``kubectl apply -f rbac.yaml``, the Secret, then ``kubectl apply -f <deployment>``;
    ``applied_at`` is when the last apply started."""
    cluster.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))
    create_config_secret(cluster, **(config or {}))
    applied_at = time.monotonic()
    cluster.kubectl("apply", "-f", str(deployment))
    return Install("manifests", files=[deployment, MANIFESTS / "rbac.yaml"], applied_at=applied_at)


def install_manifest_objects(cluster: NodeCluster, objects: Sequence[dict[str, Any]]) -> Install:
    """``kubectl apply`` of objects (a manifest the test changed, e.g. its args)."""
    cluster.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))
    create_config_secret(cluster)
    applied_at = time.monotonic()
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": list(objects)}),
    )
    return Install(
        "manifests", files=[MANIFESTS / "rbac.yaml"], objects=list(objects), applied_at=applied_at
    )


def install_chart(cluster: NodeCluster, helm: Path, **values: Any) -> Install:
    """``helm install`` of the chart with the Go install guide's values (its config and
    ``logVerbosityLevel: 5``) plus ``values``."""
    merged = {
        "config": {"url": cluster.xo_url, "insecure": False, "token": TOKEN},
        "logVerbosityLevel": 5,
        **values,
    }
    path = cluster.workdir / "values.yaml"
    path.write_text(yaml.safe_dump(merged))
    applied_at = time.monotonic()
    done = subprocess.run(
        [
            str(helm),
            "install",
            NAME,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kubeconfig",
            str(cluster.admin_kubeconfig),
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(cluster.workdir), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return Install("helm", release=NAME, helm=helm, applied_at=applied_at)


def go_objects(cluster: NodeCluster) -> list[dict[str, Any]]:
    """The Go CCM's envfrom-secret install (its Deployment reads the XOA_* variables of
    the Secret xenorchestra-config; the tolerations and security contexts are its
    chart's defaults, which its manifests render) with only the image changed."""
    objects = go_install(go_manifest_args()["cloud-controller-manager-envfrom-secret.yml"])
    defaults = go_values()
    for obj in objects:
        if obj["kind"] == "Deployment":
            spec = obj["spec"]["template"]["spec"]
            spec["tolerations"] = defaults["tolerations"]
            spec["priorityClassName"] = defaults["priorityClassName"]
            spec["securityContext"] = {
                key.split(".", 1)[1]: value
                for key, value in defaults.items()
                if key.startswith("podSecurityContext.")
            }
            container = spec["containers"][0]
            container["image"] = IMAGE
            container["envFrom"] = [{"secretRef": {"name": "xenorchestra-config"}}]
            container["securityContext"] = {
                "allowPrivilegeEscalation": defaults["securityContext.allowPrivilegeEscalation"],
                "capabilities": {"drop": defaults["securityContext.capabilities.drop"]},
                "seccompProfile": {"type": defaults["securityContext.seccompProfile.type"]},
            }
    return [*objects, env_secret(cluster.xo_url)]


def install_go(cluster: NodeCluster) -> Install:
    objects = go_objects(cluster)
    applied_at = time.monotonic()
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects})
    )
    return Install("go", objects=objects, applied_at=applied_at)


def uninstall(cluster: NodeCluster, install: Install) -> None:
    """Remove what ``install`` made, the config Secret and the Lease; wait until no CCM
    pod is left (force-deleting those of a node whose kubelet is gone)."""
    if install.release and install.helm:
        subprocess.run(
            [
                str(install.helm),
                "uninstall",
                install.release,
                "--namespace",
                NAMESPACE,
                "--kubeconfig",
                str(cluster.admin_kubeconfig),
                "--wait",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"HOME": str(cluster.workdir), "PATH": "/usr/bin:/bin"},
            check=False,
        )
    if install.objects:
        cluster.kubectl(
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            "-",
            stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": install.objects}),
            check=False,
        )
    for path in install.files:
        cluster.kubectl(
            "delete", "--ignore-not-found", "--wait=false", "-f", str(path), check=False
        )
    for kind, name in (("secret", NAME), ("secret", "xenorchestra-config"), ("lease", LEASE)):
        cluster.kubectl("-n", NAMESPACE, "delete", kind, name, "--ignore-not-found", check=False)
    kubelet_up = cluster.kubelet is not None and cluster.kubelet.poll() is None
    if not kubelet_up:
        cluster.kubectl(
            "-n",
            NAMESPACE,
            "delete",
            "pod",
            "-l",
            SELECTOR,
            "--force",
            "--grace-period=0",
            "--ignore-not-found",
            check=False,
        )
    wait_for(lambda: not ccm_pods(cluster), within=60, what="the CCM pods gone")


# -- reading the cluster -------------------------------------------------------------
def ccm_pods(cluster: NodeCluster) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("-n", NAMESPACE, "get", "pods", "-l", SELECTOR)["items"])


def ready_pods(cluster: NodeCluster) -> list[dict[str, Any]]:
    def ready(pod: dict[str, Any]) -> bool:
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        return conditions.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp")

    return [pod for pod in ccm_pods(cluster) if ready(pod)]


def taint_keys(node: dict[str, Any]) -> set[str]:
    return {t["key"] for t in node["spec"].get("taints") or []}


def initialized(cluster: NodeCluster) -> dict[str, Any] | None:
    node = cluster.node()
    if node and node["spec"].get("providerID") and UNINITIALIZED not in taint_keys(node):
        return node
    return None


def node_events(cluster: NodeCluster, reason: str | None = None) -> list[dict[str, Any]]:
    """What ``kubectl get events`` lists about the node (core/v1 Events)."""
    selector = f"involvedObject.kind=Node,involvedObject.name={NODE_NAME}"
    if reason:
        selector += f",reason={reason}"
    return list(cluster.kubectl_json("get", "events", "-A", "--field-selector", selector)["items"])


def lease_holder(cluster: NodeCluster) -> str:
    done = cluster.kubectl("-n", NAMESPACE, "get", "lease", LEASE, "-o", "json", check=False)
    if done.returncode != 0:
        return ""
    return str(json.loads(done.stdout)["spec"].get("holderIdentity") or "")


def pod_logs(cluster: NodeCluster, pod: str, *, previous: bool = False) -> str:
    """``kubectl logs`` (through the API server and the kubelet)."""
    args = ["-n", NAMESPACE, "logs", pod]
    if previous:
        args.append("--previous")
    return cluster.kubectl(*args).stdout


@contextlib.contextmanager
def installed(cluster: NodeCluster, install: Install) -> Iterator[Install]:
    try:
        yield install
    finally:
        uninstall(cluster, install)
