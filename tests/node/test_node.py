"""What operators deploy, run as Pods by a real kubelet and containerd.

Every case runs the image scripts/build-image made from the Dockerfile, on the
node of ``node_cluster`` (kubelet ``--cloud-provider=external``), against the fake
XO in the node's network namespace. Before each case the kubelet registers its Node
again as a new VM of the fake XO (``vm``): a fresh Node with the uninitialized
taint, the node-IP annotation and the systemUUID the kubelet itself reports.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain import labels as L

from .cluster import NODE_NAME, UNINITIALIZED, NodeCluster, wait_for
from .deploy import (
    MANIFESTS,
    NAMESPACE,
    TIMINGS,
    ccm_pods,
    initialized,
    install_chart,
    install_go,
    install_manifest_objects,
    install_manifests,
    installed,
    lease_holder,
    node_events,
    pod_logs,
    ready_pods,
    taint_keys,
)
from .xo import TOKEN, FakeXO

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]

SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"


@pytest.fixture(scope="module")
def xo(node_cluster: NodeCluster) -> Iterator[FakeXO]:
    client = FakeXO(node_cluster.xo_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def world(xo: FakeXO) -> dict[str, str]:
    pool = xo.add_pool("Node Pool")
    host = xo.add_host(pool_id=pool["id"], name_label="xcp-node-host")
    return {"pool": pool["id"], "host": host["id"]}


@pytest.fixture
def vm(node_cluster: NodeCluster, xo: FakeXO, world: dict[str, str]) -> dict[str, Any]:
    """A new VM, and the kubelet registered again as that machine (its systemUUID)."""
    created = xo.add_vm(name_label=NODE_NAME, host_id=world["host"], address=node_cluster.node_ip)
    node_cluster.stop_kubelet()
    node_cluster.kubectl("delete", "node", NODE_NAME, "--ignore-not-found")
    node_cluster.start_kubelet(system_uuid=created["id"])
    node = node_cluster.wait_node_ready()
    assert node["status"]["nodeInfo"]["systemUUID"] == created["id"]
    assert UNINITIALIZED in taint_keys(node)
    # Pods of an earlier case that outlived their kubelet are gone once it is back.
    wait_for(lambda: not ccm_pods(node_cluster), within=60, what="no CCM pod left")
    wait_for(lambda: not node_cluster.ns.pod_pids(), within=60, what="no pod process left")
    return created


def check_initialized(
    cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str], *, case: str, since: float
) -> dict[str, Any]:
    """The kubelet's Node initialized by the CCM pod: providerID, labels, addresses as
    kubelet and CCM settle them, the taint gone, a Synced event; the time is recorded."""
    node: dict[str, Any] = wait_for(
        lambda: initialized(cluster), within=120, what="initialized Node"
    )
    TIMINGS[case] = time.monotonic() - since
    assert node["spec"]["providerID"] == f"xenorchestra://{world['pool']}/{vm['id']}"
    labels = node["metadata"]["labels"]
    expected = {
        L.INSTANCE_TYPE: "2vCPU-4GB",
        L.REGION: world["pool"],
        L.ZONE: world["host"],
        L.VM_NAME_LABEL: NODE_NAME,
        L.POOL_ID: world["pool"],
        L.HOST_ID: world["host"],
        L.HOST_NAME_LABEL: "xcp-node-host",
    }
    assert {key: labels.get(key) for key in expected} == expected
    assert UNINITIALIZED not in taint_keys(node)
    assert node["metadata"]["annotations"][L.PROVIDED_NODE_IP] == cluster.node_ip
    wait_for(
        lambda: (n := cluster.node()) and n["status"]["addresses"] == settled_addresses(cluster),
        within=30,
        what="the addresses the CCM sets",
    )
    synced = wait_for(lambda: node_events(cluster, "Synced"), within=30, what="a Synced event")
    assert synced[-1]["source"]["component"] == "cloud-node-controller"
    assert synced[-1]["involvedObject"]["uid"] == node["metadata"]["uid"]
    return node


def settled_addresses(cluster: NodeCluster) -> list[dict[str, str]]:
    """kubelet's --node-ip (InternalIP) and the VM's main IP (ExternalIP), the same
    address here, the node IP first, then the name: what the Go CCM writes too."""
    return [
        {"type": "InternalIP", "address": cluster.node_ip},
        {"type": "ExternalIP", "address": cluster.node_ip},
        {"type": "Hostname", "address": NODE_NAME},
    ]


def probe(cluster: NodeCluster, pod: dict[str, Any], path: str) -> tuple[int, str]:
    """GET ``path`` of the pod's secure port as kubelet's probe does (HTTPS, no
    credentials, certificate not verified), from inside the node's namespace."""
    url = f"https://{pod['status']['podIP']}:10258{path}"
    out = cluster.ns.run(
        ["curl", "-sk", "--max-time", "5", "-o", "/dev/stderr", "-w", "%{http_code}", url]
    )
    return int(out.strip() or 0), url


def check_probes(
    cluster: NodeCluster,
    *,
    healthz: str,
    ready: int,
    refused: tuple[int, ...] = (401, 403),
    early_liveness: bool = False,
) -> None:
    """The probes of the manifests answer: ``ready`` pods Ready, none restarted, no
    liveness failure, and the paths answer unauthenticated while others are
    ``refused`` (with the Go RBAC, which grants no SubjectAccessReview, the check
    itself fails: 500, as a Go component answers then).

    ``early_liveness``: the Go manifest probes liveness with no initial delay, so its
    first probe may come before the port listens (about a second after the start,
    once XO answered and the node cache is synced): "connection refused" then, once,
    never a failing answer."""
    pods = wait_for(
        lambda: len(r := ready_pods(cluster)) == ready and r, within=60, what=f"{ready} Ready pods"
    )
    time.sleep(12)  # past the liveness probe's initial delay and a period
    for pod in ccm_pods(cluster):
        statuses = pod["status"].get("containerStatuses") or []
        assert [s["restartCount"] for s in statuses] == [0], pod["metadata"]["name"]
    unhealthy = [
        e
        for e in cluster.kubectl_json("-n", NAMESPACE, "get", "events")["items"]
        if e["reason"] == "Unhealthy" and "Liveness" in e["message"]
    ]
    if early_liveness:
        assert all("connect: connection refused" in e["message"] for e in unhealthy), unhealthy
        assert all(e.get("count", 1) == 1 for e in unhealthy), unhealthy
    else:
        assert unhealthy == []
    for pod in pods:
        for path in (healthz, "/readyz", "/metrics"):
            status, url = probe(cluster, pod, path)
            assert status == 200, url
        status, url = probe(cluster, pod, "/configz")  # not an always-allowed path
        assert status in refused, url


def test_the_manifests_initialize_the_kubelets_node(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str]
) -> None:
    """deploy/kubernetes unchanged: rbac.yaml, the Secret of the install guide,
    deployment.yaml (pod network, 2 replicas, read-only root, uid 10258, probes)."""
    install = install_manifests(node_cluster, MANIFESTS / "deployment.yaml")
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="manifests", since=install.applied_at)
        check_probes(node_cluster, healthz="/livez", ready=2)
        # Several kubelet status updates later, the kubelet has kept the CCM's addresses.
        node = node_cluster.node()
        assert node is not None and node["status"]["addresses"] == settled_addresses(node_cluster)
        for pod in ccm_pods(node_cluster):
            container = pod["spec"]["containers"][0]
            assert container["image"] == "xenorchestra-cloud-controller-manager:0.1.0"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert pod["status"]["podIP"].startswith("10.244.")  # the pod network


def test_the_host_network_variant_initializes_the_node(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str]
) -> None:
    """variants/deployment-hostnetwork.yaml: the pods share the node's network (one
    runs: the second would need the same host port on this single node)."""
    install = install_manifests(
        node_cluster, MANIFESTS / "variants" / "deployment-hostnetwork.yaml"
    )
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="host network", since=install.applied_at)
        pods = wait_for(lambda: ready_pods(node_cluster), within=60, what="a Ready pod")
        assert [p["status"]["podIP"] for p in pods] == [node_cluster.node_ip]
        assert [p["spec"]["hostNetwork"] for p in pods] == [True]


def test_the_helm_chart_initializes_the_node(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str], helm: Path
) -> None:
    """helm install with the Go install guide's values (logVerbosityLevel: 5)."""
    install = install_chart(node_cluster, helm)
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="helm", since=install.applied_at)
        (pod,) = wait_for(lambda: ready_pods(node_cluster), within=60, what="a Ready pod")
        assert "--v=5" in pod["spec"]["containers"][0]["args"]
        events = node_cluster.kubectl("get", "events", "-A").stdout
        assert re.search(r"Normal\s+Synced\s+node/" + NODE_NAME, events), events


def test_the_go_ccm_install_runs_with_only_its_image_changed(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str]
) -> None:
    """The Go CCM's objects (names, args, XOA_* Secret, its ClusterRole) and this image."""
    install = install_go(node_cluster)
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="Go install", since=install.applied_at)
        check_probes(node_cluster, healthz="/healthz", ready=1, refused=(500,), early_liveness=True)


def test_two_replicas_one_leader_the_other_takes_over_and_logs_hold_no_secret(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str], xo: FakeXO
) -> None:
    """deployment.yaml at --v=10: one replica leads, the other waits; deleting the
    leader's pod hands the Lease over, and the new leader acts. kubectl logs of
    both shows neither the XO token nor a service-account token."""
    objects = [
        doc for doc in yaml_documents(MANIFESTS / "deployment.yaml") if doc["kind"] == "Deployment"
    ]
    container = objects[0]["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--v=10" if a == "--v=2" else a for a in container["args"]]
    install = install_manifest_objects(node_cluster, objects)
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="two replicas", since=install.applied_at)
        pods = wait_for(
            lambda: len(r := ready_pods(node_cluster)) == 2 and r, within=60, what="2 Ready pods"
        )
        names = sorted(p["metadata"]["name"] for p in pods)
        holder = wait_for(lambda: lease_holder(node_cluster), within=30, what="a Lease holder")
        leader = next(n for n in names if holder.startswith(n + "_"))
        standby = next(n for n in names if n != leader)
        logs = {name: pod_logs(node_cluster, name) for name in names}
        assert "leading: starting" in logs[leader]
        assert "leading: starting" not in logs[standby]
        assert "waiting for leadership" in logs[standby]

        node_cluster.kubectl("-n", NAMESPACE, "delete", "pod", leader, "--wait=false")
        new_holder = wait_for(
            lambda: (h := lease_holder(node_cluster)) and not h.startswith(leader) and h,
            within=40,
            what="a new Lease holder",
        )
        # The leader released the Lease on SIGTERM: the standby (retrying every 2 s) or
        # the replacement pod (starting meanwhile) takes it, whichever asks first.
        successor = new_holder.split("_")[0]
        assert successor != leader
        # The replacement may still be ContainerCreating (no logs to read yet): wait
        # until both replicas run again, so each one's log says who leads.
        ready_after = wait_for(
            lambda: len(r := ready_pods(node_cluster)) == 2 and r,
            within=60,
            what="2 Ready pods after the takeover",
        )
        after = {p["metadata"]["name"] for p in ready_after} - {leader}
        assert successor in after, (successor, after)
        others = after - {successor}
        for name in others:  # still one leader: the rest keep waiting
            assert "leading: starting" not in pod_logs(node_cluster, name)
        xo.rename_vm(vm["id"], "renamed-after-takeover")
        wait_for(
            lambda: (
                (n := node_cluster.node())
                and n["metadata"]["labels"].get(L.VM_NAME_LABEL) == "renamed-after-takeover"
            ),
            within=60,
            what="the new leader's label sync",
        )
        for name in after:
            logs[name] = pod_logs(node_cluster, name)
        assert "leading: starting" in logs[successor]
        for name, text in logs.items():
            assert "DEBUG" in text or "TRACE" in text, f"{name} did not log at --v=10"
            assert TOKEN not in text, f"the XO token in the logs of {name}"
            assert not re.search(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.", text), f"a JWT in {name}"


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_a_ccm_pod_killed_during_a_registration_leaves_it_to_the_new_pod(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str], xo: FakeXO, helm: Path
) -> None:
    """The chart with one replica: a new Node's VM lookup hangs in XO, the pod is
    killed (kubectl delete --force) while the Node is still tainted, and the pod the
    Deployment starts in its place initializes the Node."""
    install = install_chart(node_cluster, helm, replicaCount=1)
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="kill: first pod", since=install.applied_at)
        (first,) = wait_for(lambda: ready_pods(node_cluster), within=60, what="a Ready pod")
        # The kubelet registers the Node again as another VM; the pod keeps running.
        second = xo.add_vm(
            name_label=NODE_NAME, host_id=world["host"], address=node_cluster.node_ip
        )
        xo.set_faults(hang=True, endpoint="GET /vms/{id}")
        xo.reset_request_counts()
        node_cluster.stop_kubelet()
        node_cluster.kubectl("delete", "node", NODE_NAME)
        node_cluster.start_kubelet(system_uuid=second["id"])
        wait_for(
            lambda: xo.request_counts().get("GET /vms/{id}"), within=60, what="a VM lookup in XO"
        )
        node = node_cluster.node()
        assert node is not None and UNINITIALIZED in taint_keys(node)  # mid-registration
        name, uid = first["metadata"]["name"], first["metadata"]["uid"]
        node_cluster.kubectl("-n", NAMESPACE, "delete", "pod", name, "--force", "--grace-period=0")
        wait_for(
            lambda: not node_cluster.ns.pod_pids(uid),
            within=30,
            what="the killed pod's processes gone",
        )
        node = node_cluster.node()
        assert node is not None and UNINITIALIZED in taint_keys(node)
        xo.clear_faults()
        killed_at = time.monotonic()
        check_initialized(node_cluster, second, world, case="kill: new pod", since=killed_at)
        assert [p["metadata"]["name"] != name for p in ccm_pods(node_cluster)] == [True]


def test_a_stopped_vm_gets_the_shutdown_taint_and_a_deleted_one_loses_its_node(
    node_cluster: NodeCluster, vm: dict[str, Any], world: dict[str, str], xo: FakeXO
) -> None:
    """The VM stops and its kubelet with it: the Node goes NotReady and gets the
    shutdown taint. The VM is deleted: the Node is deleted, with a DeletingNode event."""
    install = install_manifests(
        node_cluster, MANIFESTS / "deployment.yaml", config={"deletionConfirmDelay": 5}
    )
    with installed(node_cluster, install):
        check_initialized(node_cluster, vm, world, case="lifecycle", since=install.applied_at)
        xo.stop_vm(vm["id"])
        node_cluster.stop_kubelet()
        wait_for(
            lambda: (n := node_cluster.node()) and SHUTDOWN in taint_keys(n),
            within=90,
            what="the shutdown taint",
        )
        xo.delete_vm(vm["id"])
        wait_for(lambda: node_cluster.node() is None, within=90, what="the Node deleted")
        deleting = wait_for(
            lambda: node_events(node_cluster, "DeletingNode"), within=30, what="DeletingNode"
        )
        assert deleting[-1]["source"]["component"] == "cloud-node-lifecycle-controller"
