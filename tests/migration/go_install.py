"""A Go CCM install, as its release ships it, written from the measured facts of
``tests/data/go-ccm-deploy.md`` (names, selectors, rules, args, values keys), and
this CCM run the way a pod runs it (in-cluster credentials, exact container args).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from adapters.kubernetes import ApiError, KubeClient
from tests.integration.controlplane import ControlPlane

DATA = Path(__file__).parents[1] / "data" / "go-ccm-deploy.md"
NAME = "xenorchestra-cloud-controller-manager"
NAMESPACE = "kube-system"
SELECTOR = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME}
LEASE = "cloud-controller-manager-xenorchestra"
XO_TOKEN = "fake-xo-token"
GO_IMAGE = "ghcr.io/vatesfr/xenorchestra-cloud-controller-manager:v1.1.0"

Obj = dict[str, Any]


# -- facts from go-ccm-deploy.md ---------------------------------------------------
def _section(title: str) -> str:
    text = DATA.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start : end if end > 0 else None]


def go_manifest_args() -> dict[str, list[str]]:
    """The container args of each Go manifest (``docs/deploy/*.yml``)."""
    out = {}
    for match in re.finditer(r"^- `([^`]+)`: (.+)$", _section("Container args"), re.M):
        out[match.group(1)] = match.group(2).split()
    return out


def go_values() -> dict[str, Any]:
    """The Go chart's values keys (dotted) and their defaults."""
    block = _section("Helm values keys").split("```")[1]
    out: dict[str, Any] = {}
    for line in block.strip().splitlines():
        key, _, default = line.partition("\t")
        out[key] = json.loads(default) if default.strip() not in ("null", "") else None
    return out


def go_cluster_role_rules() -> list[Obj]:
    rules = []
    for line in _section("ClusterRole rules").splitlines():
        match = re.match(r"^- (\S*) (\S+): (\S+)$", line.replace("-  ", "- core "))
        if match:
            group = "" if match.group(1) == "core" else match.group(1)
            rules.append(
                {
                    "apiGroups": [group],
                    "resources": [match.group(2)],
                    "verbs": match.group(3).split(","),
                }
            )
    return rules


def go_install(args: Sequence[str]) -> list[Obj]:
    """The Go CCM's objects in kube-system: ServiceAccount, ClusterRole and its
    binding, the authentication-reader RoleBinding, the Secret of its install
    guide, and the Deployment with its selector and ``args``."""
    labels = {**SELECTOR, "app.kubernetes.io/managed-by": "Helm"}
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"system:{NAME}", "labels": labels},
            "rules": go_cluster_role_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"system:{NAME}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"system:{NAME}",
            },
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": f"system:{NAME}:extension-apiserver-authentication-reader",
                "namespace": NAMESPACE,
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": subject,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": dict(SELECTOR)},
                "template": {
                    "metadata": {"labels": dict(SELECTOR)},
                    "spec": {
                        "serviceAccountName": NAME,
                        "dnsPolicy": "Default",
                        "containers": [
                            {
                                "name": NAME,
                                "image": GO_IMAGE,
                                "args": list(args),
                                "ports": [
                                    {"name": "metrics", "containerPort": 10258, "protocol": "TCP"}
                                ],
                                "livenessProbe": {
                                    "httpGet": {
                                        "path": "/healthz",
                                        "port": "metrics",
                                        "scheme": "HTTPS",
                                    }
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]


def config_secret(xo_url: str) -> Obj:
    """The Secret of the Go install guide (``--from-file=config.yaml``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"config.yaml": f"url: {xo_url}\ninsecure: false\ntoken: {XO_TOKEN}\n"},
    }


def env_secret(xo_url: str) -> Obj:
    """The Secret of the Go envfrom-secret manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "xenorchestra-config", "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"XOA_URL": xo_url, "XOA_TOKEN": XO_TOKEN, "XOA_INSECURE": "false"},
    }


# -- kubectl apply / delete ------------------------------------------------------------
_COLLECTIONS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "Service": "/api/v1/namespaces/{ns}/services",
}


def object_path(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    collection = _COLLECTIONS[obj["kind"]].format(ns=meta.get("namespace", ""))
    return f"{collection}/{meta['name']}"


async def apply(kube: KubeClient, obj: Mapping[str, Any]) -> Obj:
    """``kubectl apply`` of one object: create it, or replace what is there (an
    immutable field that differs, like a Deployment's selector, fails here as it
    fails kubectl)."""
    path = object_path(obj)
    collection = path.rsplit("/", 1)[0]
    try:
        return await kube.request("POST", collection, body=dict(obj))
    except ApiError as err:
        if not err.already_exists:
            raise
    current = await kube.request("GET", path)
    meta = {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
    return await kube.request("PUT", path, body={**obj, "metadata": meta})


async def apply_all(kube: KubeClient, docs: Sequence[Mapping[str, Any]]) -> list[Obj]:
    return [await apply(kube, d) for d in docs]


async def delete(kube: KubeClient, obj: Mapping[str, Any]) -> None:
    with contextlib.suppress(ApiError):
        await kube.request("DELETE", object_path(obj))


async def exists(kube: KubeClient, obj: Mapping[str, Any]) -> bool:
    try:
        await kube.request("GET", object_path(obj))
    except ApiError as err:
        if err.not_found:
            return False
        raise
    return True


# -- this CCM, run as a pod runs it ---------------------------------------------------
#: Runs the console script's main() with the in-cluster credential files of a test
#: directory: the kubernetes client reads its service-account files from fixed
#: paths (/var/run/secrets/...), which a pod has and a test machine has not.
LAUNCHER = (
    "import os, sys\n"
    "import kubernetes.config.incluster_config as ic\n"
    "d = os.environ['XOCCM_TEST_SERVICEACCOUNT_DIR']\n"
    "ic.SERVICE_TOKEN_FILENAME = os.path.join(d, 'token')\n"
    "ic.SERVICE_CERT_FILENAME = os.path.join(d, 'ca.crt')\n"
    "from entrypoints.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class PodCCM:
    """This CCM started with a container's exact args and environment, in-cluster
    credentials of a ServiceAccount token, health on the args' --secure-port."""

    def __init__(
        self,
        *,
        args: Sequence[str],
        control_plane: ControlPlane,
        token: str,
        env: Mapping[str, str] | None = None,
        pod_name: str = "xoccm-pod",
    ) -> None:
        self.args = list(args)
        secure = [a for a in self.args if a.startswith("--secure-port=")]
        self.port = int(secure[-1].split("=", 1)[1]) if secure else 10258
        self.dir = Path(tempfile.mkdtemp(prefix="xoccm-pod-"))
        (self.dir / "token").write_text(token)
        (self.dir / "ca.crt").write_bytes(control_plane.ca_file.read_bytes())
        server = urlparse(control_plane.server)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(server.port),
            "XOCCM_TEST_SERVICEACCOUNT_DIR": str(self.dir),
            "POD_NAME": pod_name,
            "POD_NAMESPACE": NAMESPACE,
            "POD_UID": "00000000-0000-0000-0000-000000000001",
            **(env or {}),
        }
        self.log_path = self.dir / "log.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        #: Exit code and log once stopped by :func:`running`.
        self.exit_code: int | None = None
        self.final_log = ""

    def start(self) -> PodCCM:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(timeout=3.0, verify=False) as client:
            return await client.get(f"https://127.0.0.1:{self.port}{path}", headers=headers)

    async def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"CCM exited with {self.proc.returncode}:\n{self.log[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"CCM not ready within {within}s:\n{self.log[-4000:]}")

    def stop(self, within: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self) -> None:
        for path in self.dir.iterdir():
            path.unlink()
        self.dir.rmdir()


@contextlib.asynccontextmanager
async def running(ccm: PodCCM) -> AsyncIterator[PodCCM]:
    """Start ``ccm``, wait until ready, yield it; then SIGTERM it, keep its exit code
    and log (``exit_code``, ``final_log``) and remove its files."""
    ccm.start()
    try:
        await ccm.wait_ready()
        yield ccm
    finally:
        ccm.exit_code = ccm.stop()
        ccm.final_log = ccm.log
        ccm.cleanup()


def container_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]
