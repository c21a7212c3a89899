"""Kubeconfig credentials that rotate under a running CCM (issue 30, item 2).

The kubernetes package read a ``tokenFile`` once: after the file was replaced and the
old token revoked, the API server's audit log showed the old token on every request
and the CCM was refused for good. client-go rereads the file when it changes and
after a 401, and runs an exec or auth-provider plugin again after a 401.

On the real kube-apiserver, tokens are revoked for real: each is bound to a Secret
(TokenRequest ``boundObjectRef``), and deleting the Secret invalidates it. The
scripted stand-in server checks what cannot be arranged on a real one (a file whose
``stat`` does not change, a file that cannot be read).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from loguru import logger

from adapters.kubernetes import ApiError, KubeClient, connect
from adapters.kubernetes import transport as transport_module
from adapters.kubernetes.configuration import Rotation, api_config
from entrypoints.testkits.fake_xo import FakeXOServer, FakeXOState

from .conftest import StartCCM
from .controlplane import ControlPlane
from .kube import apply_object, create_node, delete_node, get_node, unique
from .stand_in import StandIn
from .test_client import FAST
from .waiting import until

pytestmark = pytest.mark.integration

EXEC_PLUGIN = """
import json, pathlib, sys
token_file, runs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": token_file.read_text().strip()},
}))
"""

GCP_CMD = """
import json, pathlib, sys
token_file, runs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
print(json.dumps({"credential": {
    "access_token": token_file.read_text().strip(),
    "token_expiry": "2999-01-01T00:00:00Z",
}}))
"""


@dataclass
class Identity:
    """A ServiceAccount with cluster-admin, and tokens each bound to a Secret."""

    kube: KubeClient
    name: str
    namespace: str = "kube-system"

    async def token(self) -> tuple[str, str]:
        """(token, name of the Secret whose deletion revokes it)."""
        secret = unique(f"{self.name}-tok")
        made = await self.kube.request(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/secrets",
            body={
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": self.namespace},
            },
        )
        answer = await self.kube.request(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{self.name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": 3600,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "name": secret,
                        "uid": made["metadata"]["uid"],
                    },
                },
            },
        )
        return str(answer["status"]["token"]), secret

    async def revoke(self, secret: str, token: str, server: str, ca_file: Path) -> None:
        """Delete the Secret, and wait until the API server refuses the token (its
        authentication cache keeps a good answer up to 10 s)."""
        await self.kube.request("DELETE", f"/api/v1/namespaces/{self.namespace}/secrets/{secret}")
        configuration = k8s.Configuration(host=server)
        configuration.ssl_ca_cert = str(ca_file)
        configuration.api_key = {"BearerToken": f"Bearer {token}"}
        async with KubeClient(api_config(configuration), FAST, name="revoked") as probe:

            async def refused() -> bool:
                try:
                    await probe.request("GET", "/api/v1/namespaces/default")
                except ApiError as err:
                    return err.status == 401
                return False

            await until(refused, within=30, every=0.5)


@pytest.fixture
async def identity(kube: KubeClient) -> AsyncIterator[Identity]:
    name = unique("rotating")
    await apply_object(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": "kube-system"},
        },
    )
    await apply_object(
        kube,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        },
    )
    try:
        yield Identity(kube, name)
    finally:
        await kube.request(
            "DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"
        )


def kubeconfig(path: Path, control_plane: ControlPlane, user: dict[str, Any]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority": str(control_plane.ca_file),
                },
            }
        ],
        "users": [{"name": "rotating", "user": user}],
        "contexts": [{"name": "rotating", "context": {"cluster": "test", "user": "rotating"}}],
        "current-context": "rotating",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def replace_file(path: Path, content: str) -> None:
    """Atomically, as kubelet swaps a projected volume's files."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(content)
    os.replace(staged, path)


@pytest.mark.timeout(180)
async def test_a_running_ccm_follows_its_rotated_token_file_past_the_revocation(
    kube: KubeClient,
    identity: Identity,
    control_plane: ControlPlane,
    start_ccm: StartCCM,
    tmp_path: Path,
) -> None:
    first, first_secret = await identity.token()
    second, _ = await identity.token()
    token_file = tmp_path / "token"
    token_file.write_text(first + "\n")
    config_path = kubeconfig(tmp_path / "kubeconfig", control_plane, {"tokenFile": "token"})
    async with FakeXOServer(state=FakeXOState.from_samples()) as xo:
        vm = next(iter(xo.state.objects["VM"].values()))
        ccm = await start_ccm(xo.url, kubeconfig=config_path, ready=False)
        await ccm.wait_ready(within=30)
        names = [unique("rotated-before"), unique("rotated-after")]
        try:
            await create_node(kube, names[0], system_uuid=vm["id"])
            await until(lambda: initialized(kube, names[0], vm["id"]), within=20)
            # The kubelet's way: the file is swapped, then the old token expires
            # (here: is revoked at once).
            replace_file(token_file, second + "\n")
            await identity.revoke(first_secret, first, control_plane.server, control_plane.ca_file)
            await create_node(kube, names[1], system_uuid=vm["id"])
            await until(lambda: initialized(kube, names[1], vm["id"]), within=30)
            assert ccm.returncode is None, ccm.log[-3000:]
            assert "changed: using the new one" in ccm.log
        finally:
            for name in names:
                await delete_node(kube, name)
        assert await ccm.stop() == 0


async def initialized(kube: KubeClient, name: str, vm_id: str) -> bool:
    node = await get_node(kube, name)
    return str(node["spec"].get("providerID", "")).endswith(vm_id)


@pytest.mark.parametrize("plugin", ["exec", "gcp-cmd-path"])
@pytest.mark.timeout(120)
async def test_a_plugin_runs_again_after_a_401(
    plugin: str, identity: Identity, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """An exec credential without an expiry (or an auth provider's far in the
    future): the package never asks again; after the API server refuses it, the
    plugin runs again and the refused request goes through with the new token."""
    first, first_secret = await identity.token()
    second, _ = await identity.token()
    token_file, runs = tmp_path / "token", tmp_path / "runs"
    token_file.write_text(first)
    script = tmp_path / "plugin.py"
    script.write_text(EXEC_PLUGIN if plugin == "exec" else GCP_CMD)
    args = [str(script), str(token_file), str(runs)]
    user: dict[str, Any]
    if plugin == "exec":
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": sys.executable,
                "args": args,
            }
        }
    else:
        user = {
            "auth-provider": {
                "name": "gcp",
                "config": {"cmd-path": sys.executable, "cmd-args": " ".join(args)},
            }
        }
    path = kubeconfig(tmp_path / "kubeconfig", control_plane, user)
    async with await connect(str(path), name="plugin") as client:
        await client.request("GET", "/api/v1/namespaces/default")
        assert runs.read_text() == "1"
        token_file.write_text(second)
        await identity.revoke(first_secret, first, control_plane.server, control_plane.ca_file)
        await client.request("GET", "/api/v1/namespaces/default")
        assert runs.read_text() == "2"
        await client.request("GET", "/api/v1/namespaces/default")
        assert runs.read_text() == "2"  # the new token serves until refused


def token_file_client(stand_in: StandIn, path: Path, token: str) -> KubeClient:
    configuration = k8s.Configuration(host=stand_in.url)
    configuration.api_key = {"BearerToken": f"Bearer {token}"}
    configuration.refresh_api_key_hook = Rotation(token_file=path, token=token)  # type: ignore[assignment]
    return KubeClient(api_config(configuration), FAST, name="test")


async def test_a_token_file_is_read_again_when_it_changes(
    stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "CREDENTIALS_TTL", 0.1)
    path = tmp_path / "token"
    path.write_text("tok-a\n")
    async with token_file_client(stand_in, path, "tok-a") as client:
        await client.request("GET", "/api/v1/nodes")
        replace_file(path, "tok-b\n")
        await asyncio.sleep(0.15)  # past the transport's reuse of the header
        await client.request("GET", "/api/v1/nodes")
    assert stand_in.authorization == ["Bearer tok-a", "Bearer tok-b"]


async def test_a_401_reads_the_token_file_again_even_unchanged_in_appearance(
    stand_in: StandIn, tmp_path: Path
) -> None:
    """Rewritten in place to the same size with its times put back: only the 401
    tells; the refused request is sent again with the new token."""
    path = tmp_path / "token"
    path.write_text("tok-a\n")
    before = path.stat()
    async with token_file_client(stand_in, path, "tok-a") as client:
        await client.request("GET", "/api/v1/nodes")
        with path.open("r+") as handle:
            handle.write("tok-b\n")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        stand_in.answers = [(401, {}), (200, {})]
        await client.request("GET", "/api/v1/nodes")
    assert stand_in.authorization == ["Bearer tok-a", "Bearer tok-a", "Bearer tok-b"]


async def test_a_token_file_that_cannot_be_read_keeps_the_token_with_one_warning(
    stand_in: StandIn, tmp_path: Path
) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    path = tmp_path / "token"
    path.write_text("tok-a\n")
    try:
        async with token_file_client(stand_in, path, "tok-a") as client:
            path.unlink()
            stand_in.answers = [(401, {}), (401, {}), (401, {})]
            for _ in range(3):
                with pytest.raises(ApiError):
                    await client.request("GET", "/api/v1/nodes")
    finally:
        logger.remove(sink)
    assert set(stand_in.authorization) == {"Bearer tok-a"}
    warnings = [line for line in lines if "Unable to rotate token" in line]
    assert len(warnings) == 1, lines
    assert str(path) in warnings[0] and "tok-a" not in warnings[0]


def test_the_kubeconfig_token_file_is_resolved_next_to_the_kubeconfig(tmp_path: Path) -> None:
    """A relative tokenFile is relative to the kubeconfig's directory, as the package
    and client-go read it; the hook installed reads it from there."""
    from adapters.kubernetes.configuration import load_kubeconfig

    (tmp_path / "token").write_text("tok-a\n")
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"tokenFile": "token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    configuration = load_kubeconfig(str(path), None)
    assert isinstance(configuration.refresh_api_key_hook, Rotation)
    (tmp_path / "token").write_text("tok-b-longer\n")
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer tok-b-longer"
