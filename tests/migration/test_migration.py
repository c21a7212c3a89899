"""Switching from the Go CCM v1.1.0, on the real kube-apiserver, as
docs/migration-from-go-ccm.md tells an operator to do it:

(a) this CCM started with exactly the args of each Go manifest initializes a node;
(b) over a Go install, every apply of the doc succeeds and the nodes the Go CCM
    initialized keep their labels, providerID, taints and addresses;
(c) the Go chart's values, every key set to a non-default, reach the objects
    this chart renders (tests/migration/test_go_values.py);
(d) rolling back to the Go objects works, and leaves the nodes alone.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes import ApiError, KubeClient
from entrypoints.testkits.fake_xo import FakeXOServer, FakeXOState
from tests.integration.controlplane import ControlPlane
from tests.integration.e2e_support import metric
from tests.integration.kube import (
    RBAC_MANIFEST,
    UNINITIALIZED,
    create_node,
    delete_node,
    get_node,
    load_manifest,
    mint_token,
    unique,
)
from tests.integration.waiting import until

from .go_install import (
    LEASE,
    NAME,
    NAMESPACE,
    SELECTOR,
    XO_TOKEN,
    PodCCM,
    apply,
    apply_all,
    config_secret,
    container_of,
    delete,
    env_secret,
    exists,
    go_install,
    go_manifest_args,
    object_path,
    running,
)

pytestmark = pytest.mark.integration

GIB = 1024**3
MANIFESTS = Path(__file__).parents[2] / "deploy" / "kubernetes"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE}"


def xo_world() -> tuple[FakeXOState, list[dict[str, Any]]]:
    """A pool, a host, and VMs whose Go results are tricky: 2.5 GiB (Go's %.0f
    rounds half to even: 2GB) and 3.5 GiB (4GB)."""
    state = FakeXOState()
    pool = state.add_pool(name_label="Pool A")
    host = state.add_host(pool_id=pool["id"], name_label="xcp host 1")
    vms = [
        state.add_vm(name_label="worker one", host_id=host["id"], cpus=2, memory=int(2.5 * GIB)),
        state.add_vm(name_label="worker-two", host_id=host["id"], cpus=4, memory=int(3.5 * GIB)),
    ]
    return state, vms


def go_initialized_node(vm: dict[str, Any], name: str, *, node_ip: str) -> dict[str, Any]:
    """The Node as the Go CCM v1.1.0 left it (instances.go + cloud-provider's node
    controller): providerID, the GA and beta instance type/region/zone labels, the
    xenorchestra labels sanitized, addresses InternalIP (kubelet's --node-ip),
    ExternalIP (mainIpAddress), Hostname."""
    pool, host = vm["$pool"], vm["$container"]
    size = vm["memory"]["size"] / GIB
    instance = f"{vm['CPUs']['max']}vCPU-{round(size)}GB"  # round(): half to even, as %.0f
    labels = {
        "node.kubernetes.io/instance-type": instance,
        "beta.kubernetes.io/instance-type": instance,
        "topology.kubernetes.io/region": pool,
        "failure-domain.beta.kubernetes.io/region": pool,
        "topology.kubernetes.io/zone": host,
        "failure-domain.beta.kubernetes.io/zone": host,
        "vm.k8s.xenorchestra/name_label": vm["name_label"].replace(" ", "-"),
        "topology.k8s.xenorchestra/pool_id": pool,
        "topology.k8s.xenorchestra/pool_name_label": "Pool-A",
        "topology.k8s.xenorchestra/host_id": host,
        "topology.k8s.xenorchestra/host_name_label": "xcp-host-1",
    }
    return {
        "labels": labels,
        "annotations": {"alpha.kubernetes.io/provided-node-ip": node_ip},
        "provider_id": f"xenorchestra://{pool}/{vm['id']}",
        "system_uuid": vm["id"],
        "uninitialized": False,
        "addresses": [
            {"type": "InternalIP", "address": node_ip},
            {"type": "ExternalIP", "address": vm["mainIpAddress"]},
            {"type": "Hostname", "address": name},
        ],
    }


def essentials(node: dict[str, Any]) -> dict[str, Any]:
    """What a CCM may change on a Node."""
    return {
        "labels": node["metadata"].get("labels", {}),
        "providerID": node["spec"].get("providerID"),
        "taints": node["spec"].get("taints", []),
        "addresses": node["status"].get("addresses", []),
    }


@pytest.fixture
async def clean_install(kube: KubeClient) -> AsyncIterator[None]:
    """No CCM objects, Lease or Secret left from another test, before and after."""

    async def wipe() -> None:
        objects = [
            *go_install([]),
            *load_manifest(RBAC_MANIFEST),
            config_secret(""),
            env_secret(""),
            {"kind": "DaemonSet", "metadata": {"name": NAME, "namespace": NAMESPACE}},
        ]
        for obj in objects:
            await delete(kube, obj)
        with contextlib.suppress(ApiError):
            await kube.request("DELETE", LEASE_PATH)

    await wipe()
    yield
    await wipe()


async def initialized(kube: KubeClient, name: str, vm: dict[str, Any]) -> bool:
    node = await get_node(kube, name)
    taints = [t["key"] for t in node["spec"].get("taints", [])]
    return node["spec"].get("providerID", "").endswith(vm["id"]) and UNINITIALIZED not in taints


@contextlib.asynccontextmanager
async def a_new_node(
    kube: KubeClient, vm: dict[str, Any], prefix: str
) -> AsyncIterator[dict[str, Any]]:
    """A kubelet registers a Node for ``vm``; yields it once the CCM initialized it;
    deletes it at the end."""
    name = unique(prefix)
    try:
        await create_node(kube, name, system_uuid=vm["id"])
        await until(lambda: initialized(kube, name, vm), within=20)
        yield await get_node(kube, name)
    finally:
        await delete_node(kube, name)


# -- (a) -------------------------------------------------------------------------------
@pytest.mark.parametrize("manifest", sorted(go_manifest_args()))
async def test_the_args_of_each_go_manifest_start_this_ccm(
    manifest: str, kube: KubeClient, control_plane: ControlPlane, clean_install: None
) -> None:
    """Exactly the Go manifest's container args; the configuration from XOA_*
    variables (the Go manifests pass no --cloud-config); in-cluster credentials of
    the shipped ServiceAccount. A new node gets initialized, the secure port answers
    as the Go args configure it."""
    args = go_manifest_args()[manifest]
    await apply_all(kube, load_manifest(RBAC_MANIFEST))
    token = await mint_token(kube, namespace=NAMESPACE, service_account=NAME)
    state, vms = xo_world()
    async with FakeXOServer(state=state, token=XO_TOKEN) as xo:
        env = {"XOA_URL": xo.url, "XOA_TOKEN": XO_TOKEN, "XOA_INSECURE": "false"}
        ccm = PodCCM(args=args, control_plane=control_plane, token=token, env=env)
        async with running(ccm), a_new_node(kube, vms[0], "go-args") as node:
            assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "2vCPU-2GB"
            assert (await ccm.get("/healthz")).status_code == 200
            scrape = await ccm.get("/metrics")  # in the Go args' always-allow paths
            assert scrape.status_code == 200
            assert metric(scrape.text, "xenorchestra_ccm_node_syncs_total") >= 1
            assert (await ccm.get("/configz")).status_code == 403
            assert "without effect here: --use-service-account-credentials" in ccm.log
        assert ccm.exit_code == 0, ccm.final_log[-3000:]


# -- (b) and (d) ------------------------------------------------------------------------
async def test_kubectl_swap_from_a_go_install_and_back(
    kube: KubeClient, control_plane: ControlPlane, clean_install: None, tmp_path: Path
) -> None:
    go_args = go_manifest_args()["cloud-controller-manager.yml"]
    state, vms = xo_world()
    async with FakeXOServer(state=state, token=XO_TOKEN) as xo:
        # The Go install, as it runs today, and the nodes it initialized.
        go_objects = [*go_install(go_args), config_secret(xo.url)]
        await apply_all(kube, go_objects)
        names = [unique("go-node") for _ in vms]
        for index, (vm, name) in enumerate(zip(vms, names, strict=True)):
            await create_node(
                kube, name, **go_initialized_node(vm, name, node_ip=f"192.168.7.{index + 10}")
            )
        before = {n: essentials(await get_node(kube, n)) for n in names}
        try:
            # Step 1: keep the Secret. Step 2: apply rbac.yaml. Step 3: deployment.yaml.
            ours = [*load_manifest(RBAC_MANIFEST), *load_manifest(MANIFESTS / "deployment.yaml")]
            applied = await apply_all(kube, ours)
            deployment = next(d for d in applied if d["kind"] == "Deployment")
            assert deployment["spec"]["selector"] == {"matchLabels": SELECTOR}
            assert await exists(kube, config_secret(""))  # untouched

            # Step 4: the new pod runs, with the Deployment's args (its Secret volume is
            # where the kubelet would mount it).
            secret = (await kube.request("GET", object_path(config_secret(""))))["data"]
            config = tmp_path / "config.yaml"
            config.write_bytes(base64.b64decode(secret["config.yaml"]))
            args = [
                f"--cloud-config={config}" if a.startswith("--cloud-config=") else a
                for a in container_of(deployment)["args"]
            ]
            token = await mint_token(kube, namespace=NAMESPACE, service_account=NAME)
            ccm = PodCCM(args=args, control_plane=control_plane, token=token)
            fresh = unique("new-node")
            names.append(fresh)
            async with running(ccm):
                # Step 5: nothing changes on the nodes the Go CCM initialized, once
                # label sync and address sync have been over them. Both periodic passes
                # start with leadership and share one XO snapshot (VMs, hosts, pools);
                # the new node's initialization below gives them time to finish.
                def both_passes_read_xo() -> bool:
                    return xo.requests.snapshot().get("GET /pools", 0) >= 1

                try:
                    await until(both_passes_read_xo, within=20)
                except TimeoutError:
                    pytest.fail(f"no periodic pass: {xo.requests.snapshot()}\n{ccm.log[-3000:]}")
                # ...and a new node is initialized (the same VM: a second kubelet).
                await create_node(kube, fresh, system_uuid=vms[0]["id"])
                await until(lambda: initialized(kube, fresh, vms[0]), within=20)
                after = {n: essentials(await get_node(kube, n)) for n in before}
                assert after == before
                new = essentials(await get_node(kube, fresh))
                assert (
                    new["labels"].items()
                    >= {
                        k: v
                        for k, v in before[names[0]]["labels"].items()
                        if "xenorchestra" in k or "instance-type" in k or "topology" in k
                    }.items()
                )
                assert (await kube.request("GET", LEASE_PATH))["spec"]["holderIdentity"]
            assert ccm.exit_code == 0, ccm.final_log[-3000:]

            # (d) Roll back: apply the Go objects again, delete the ones only this CCM has.
            await apply_all(kube, go_objects)
            only_ours = [
                d
                for d in load_manifest(RBAC_MANIFEST)
                if d["metadata"]["name"].endswith((":leases", ":events", ":auth-delegator"))
            ]
            assert len(only_ours) == 5
            for obj in only_ours:
                await delete(kube, obj)
            role = await kube.request("GET", object_path(go_objects[1]))
            assert role["rules"] == go_objects[1]["rules"]
            back = await kube.request("GET", object_path(go_objects[4]))
            assert container_of(back)["args"] == go_args
            assert back["spec"]["selector"] == {"matchLabels": SELECTOR}
            for obj in only_ours:
                assert not await exists(kube, obj)
            assert {n: essentials(await get_node(kube, n)) for n in before} == before
        finally:
            for name in names:
                await delete_node(kube, name)


async def test_the_env_variant_reads_the_go_secret(
    kube: KubeClient, control_plane: ControlPlane, clean_install: None
) -> None:
    """Over the Go envfrom-secret install: applying the variant keeps the operator's
    Secret xenorchestra-config, and the CCM reads its XOA_* variables."""
    go_args = go_manifest_args()["cloud-controller-manager-envfrom-secret.yml"]
    state, vms = xo_world()
    async with FakeXOServer(state=state, token=XO_TOKEN) as xo:
        await apply_all(kube, [*go_install(go_args), env_secret(xo.url)])
        variant = load_manifest(MANIFESTS / "variants" / "deployment-envfrom-secret.yaml")
        applied = await apply_all(kube, [*load_manifest(RBAC_MANIFEST), *variant])
        deployment = next(d for d in applied if d["kind"] == "Deployment")
        container = container_of(deployment)
        assert container["envFrom"] == [{"secretRef": {"name": "xenorchestra-config"}}]
        stored = await kube.request("GET", object_path(env_secret("")))
        env = {key: base64.b64decode(value).decode() for key, value in stored["data"].items()}
        assert env["XOA_URL"] == xo.url  # not overwritten by an example
        token = await mint_token(kube, namespace=NAMESPACE, service_account=NAME)
        ccm = PodCCM(args=container["args"], control_plane=control_plane, token=token, env=env)
        async with running(ccm), a_new_node(kube, vms[1], "env-node") as node:
            assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "4vCPU-4GB"
        assert ccm.exit_code == 0, ccm.final_log[-3000:]


async def test_a_go_deployment_with_another_selector_would_fail_to_apply(
    kube: KubeClient, clean_install: None
) -> None:
    """The test that the apply above can fail: a selector that differs from Go's is
    refused by the API server (it is immutable), as kubectl apply was refused."""
    await apply_all(kube, go_install(go_manifest_args()["cloud-controller-manager.yml"]))
    [ours] = load_manifest(MANIFESTS / "deployment.yaml")
    labels = {"app.kubernetes.io/name": NAME}
    ours["spec"]["selector"] = {"matchLabels": labels}
    ours["spec"]["template"]["metadata"]["labels"] = labels
    with pytest.raises(ApiError) as refused:
        await apply(kube, ours)
    assert refused.value.status == 422
    assert "immutable" in str(refused.value)


async def test_swapping_only_the_image_keeps_working_with_the_go_rbac(
    kube: KubeClient, control_plane: ControlPlane, clean_install: None
) -> None:
    """Only the image of the Go Deployment swapped: its args, its ServiceAccount
    and its ClusterRole (no Role of this CCM, no auth-delegator binding). /metrics is
    among the always-allowed paths, so no review is needed."""
    args = go_manifest_args()["cloud-controller-manager.yml"]
    await apply_all(kube, go_install(args))
    token = await mint_token(kube, namespace=NAMESPACE, service_account=NAME)
    state, vms = xo_world()
    async with FakeXOServer(state=state, token=XO_TOKEN) as xo:
        env = {"XOA_URL": xo.url, "XOA_TOKEN": XO_TOKEN}
        ccm = PodCCM(args=args, control_plane=control_plane, token=token, env=env)
        async with running(ccm), a_new_node(kube, vms[0], "image-swap"):
            assert (await ccm.get("/metrics")).status_code == 200
        assert ccm.exit_code == 0, ccm.final_log[-3000:]
