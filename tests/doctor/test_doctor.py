"""``doctor`` against the real kube-apiserver and the fake XO: one test per mistake.

Each test starts from a healthy cluster (see conftest), makes one mistake,
and checks that doctor names it and its fix, in the table and in JSON alike,
with the right exit code (0 all ok, 1 something to fix, 2 cannot check).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.kubernetes import KubeClient, KubernetesBreakerStore
from domain.options import CCMOptions, TopologyOptions, ZoneSource
from domain.policies.deletion_breaker import ARMED, BreakerState
from domain.policies.system_uuid import swap_little_endian
from tests.integration.conftest import ServiceAccountFactory
from tests.integration.controlplane import ControlPlane, free_port, write_kubeconfig
from tests.integration.kube import apply_object, unique
from tests.xo.support import TOKEN

from .support import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    LEASE_PATH,
    Cluster,
    delete_lease,
    put_lease,
    run_doctor,
    state_of_cluster,
)

pytestmark = pytest.mark.integration


# -- a healthy cluster ------------------------------------------------------------------
async def test_a_healthy_cluster_is_all_ok_and_doctor_writes_nothing(cluster: Cluster) -> None:
    w = cluster.world
    await cluster.add_initialized_nodes(
        {
            "worker-1": cluster.add_vm("worker-1", host_id=w.host_a1),
            "worker-2": cluster.add_vm("worker-2", host_id=w.host_a2),
            "worker-3": cluster.add_vm("worker-3", host_id=w.host_b1),
        }
    )
    before = await state_of_cluster(cluster.kube)
    cluster.xo.requests.reset()

    outcome = await cluster.doctor()

    assert outcome.code == 0, outcome.table
    assert outcome.statuses() == {"ok"}, outcome.table
    outcome.expect("ok", "config", "cloud config", "parses (token authentication)")
    outcome.expect("ok", "xo.url", cluster.xo.url, "certificate verified against caFile")
    outcome.expect("ok", "xo.reachable", cluster.xo.url)
    outcome.expect("ok", "xo.token", cluster.xo.url, "accepts the token")
    outcome.expect("ok", "xo.admin", cluster.xo.url, "lists 3 VMs, 3 hosts, 2 pools")
    outcome.expect("ok", "xo.events", cluster.xo.url, "events endpoint")
    outcome.expect("ok", "kube.api", "https://127.0.0.1", "xenorchestra-cloud-controller-manager")
    outcome.expect("ok", "kube.access", "xenorchestra-cloud-controller-manager", "all 14")
    outcome.expect("ok", "kube.lease", "kube-system/cloud-controller-manager", "held by ccm-7d9f")
    outcome.expect("ok", "kube.nodes", "nodes", "3 nodes listed")
    for check in ("node.providerID", "node.vm", "node.labels"):
        outcome.expect("ok", check, "3 nodes", "all 3 nodes ok")
    assert outcome.table.rstrip().endswith("all good (exit 0)")
    # Read-only: no node, Lease or event changed; XO only saw GETs.
    assert await state_of_cluster(cluster.kube) == before
    counts = cluster.xo.requests.snapshot()
    assert counts and all(endpoint.startswith("GET ") for endpoint in counts), counts
    assert set(outcome.document["requests"]["kubernetes"]) <= {"GET", "POST"}


async def test_all_nodes_lists_every_nodes_ok_lines(cluster: Cluster) -> None:
    await cluster.add_initialized_nodes({"worker-1": cluster.add_vm("worker-1")})

    outcome = await cluster.doctor("--all-nodes")

    assert outcome.code == 0
    outcome.expect("ok", "node.vm", "worker-1", "VM worker-1")
    outcome.expect("ok", "node.labels", "worker-1", "labels match XO")


# -- the cloud config ----------------------------------------------------------------------
async def test_an_unreadable_config_cannot_be_checked(cluster: Cluster, tmp_path: Path) -> None:
    outcome = await cluster.doctor(config=tmp_path / "missing.yaml")

    assert outcome.code == 2
    outcome.expect("unknown", "config", "missing.yaml", "cannot read", fix="--cloud-config")
    outcome.expect("ok", "kube.api")  # Kubernetes is still checked


@pytest.mark.parametrize(
    ("overrides", "phrase", "fix"),
    [
        ({"url": "xo.example.org"}, "must start with http:// or https://", "base address"),
        (
            {"username": "admin", "password": "secret-pw"},
            "token is not allowed when username and password are set",
            "keep one method",
        ),
        ({"token": None}, "either token or username/password are required", "token"),
    ],
    ids=["no-scheme", "token-and-username-password", "no-credentials"],
)
async def test_an_invalid_config_is_named_with_its_fix(
    cluster: Cluster, overrides: dict[str, str | None], phrase: str, fix: str
) -> None:
    outcome = await cluster.doctor(config=cluster.config(**overrides))

    assert outcome.code == 1
    outcome.expect("fail", "config", "cloud config", phrase, fix=fix)
    assert not any(f["check"].startswith("xo.") for f in outcome.findings)


async def test_an_unknown_key_is_a_warning_naming_it(cluster: Cluster) -> None:
    """Ignored, as the Go CCM ignores it; most often a typo, so doctor says so."""
    outcome = await cluster.doctor(config=cluster.config(Token="x"))

    assert outcome.code == 0
    outcome.expect(
        "warn", "config", "cloud config", "unknown keys ignored: Token", fix="case-sensitive"
    )


async def test_the_xoa_environment_is_used_without_a_cloud_config(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XOA_URL", cluster.xo.url)
    monkeypatch.setenv("XOA_TOKEN", TOKEN)
    monkeypatch.setenv("XOA_CA_FILE", str(cluster.pki.ca_cert))

    code, table = await run_doctor("--kubeconfig", str(cluster.kubeconfig))

    assert code == 0, table
    assert "environment (XOA_*)" in table and "XO accepts the token credentials" in table
    assert TOKEN not in table


async def test_no_config_at_all_cannot_be_checked(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XOA_URL", raising=False)

    code, table = await run_doctor("--kubeconfig", str(cluster.kubeconfig))

    assert code == 2, table
    assert "no --cloud-config given and no XOA_URL" in table


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["--output", "xml"], 2)])
async def test_the_command_line_is_checked_before_anything(argv: list[str], code: int) -> None:
    assert (await run_doctor(*argv))[0] == code


# -- Xen Orchestra ------------------------------------------------------------------------
async def test_xo_unreachable_cannot_be_checked(cluster: Cluster) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    await cluster.add_initialized_nodes({"worker-1": cluster.add_vm("worker-1")})

    outcome = await cluster.doctor("--timeout", "0.5s", config=cluster.config(url=url))

    assert outcome.code == 2
    outcome.expect("unknown", "xo.reachable", url, "XO does not answer", fix="check url")
    outcome.expect("warn", "node.vm", "1 node", "not checked against XO")
    outcome.expect("ok", "node.providerID", "1 node")  # what the Node alone tells is checked


async def test_a_refused_token_is_named(cluster: Cluster) -> None:
    outcome = await cluster.doctor(config=cluster.config(token="revoked-token-0042"))

    assert outcome.code == 1
    outcome.expect("fail", "xo.token", cluster.xo.url, "401 invalid credentials", fix="admin")
    assert "revoked-token-0042" not in outcome.table


async def test_username_and_password_work_and_stay_secret(cluster: Cluster) -> None:
    cluster.xo.auth.add_user(username="ccm-admin", password="pw-7c1e9b2d")

    outcome = await cluster.doctor(
        config=cluster.config(token=None, username="ccm-admin", password="pw-7c1e9b2d")
    )

    assert outcome.code == 0, outcome.table
    outcome.expect("ok", "xo.token", cluster.xo.url, "username/password credentials")
    assert "pw-7c1e9b2d" not in outcome.table + json.dumps(outcome.document)


async def test_a_non_admin_token_is_named(cluster: Cluster) -> None:
    await cluster.add_initialized_nodes({"worker-1": cluster.add_vm("worker-1")})
    cluster.xo.auth.add_token(token="viewer-token-0042", admin=False)

    outcome = await cluster.doctor(config=cluster.config(token="viewer-token-0042"))

    assert outcome.code == 1
    outcome.expect("ok", "xo.token", cluster.xo.url)
    outcome.expect(
        "fail",
        "xo.admin",
        cluster.xo.url,
        "not an admin's",
        f"403 for pool {cluster.world.pool_a}",
        fix="token of an XO admin",
    )
    outcome.expect("warn", "node.vm", "1 node", "not checked against XO")


async def test_a_token_limited_by_acls_is_named_though_it_lists_pools(cluster: Cluster) -> None:
    # It sees its pool and lists VMs: only XO's user record tells it from an admin's,
    # and with it a VM it may not see would look deleted.
    await cluster.add_initialized_nodes({"worker-1": cluster.add_vm("worker-1")})
    cluster.xo.auth.add_token(token="acl-token-0042", admin=False, sees=[cluster.world.pool_a])

    outcome = await cluster.doctor(config=cluster.config(token="acl-token-0042"))

    assert outcome.code == 1
    outcome.expect(
        "fail",
        "xo.admin",
        cluster.xo.url,
        "not an admin's, XO says",
        "deletes no node",
        fix="token of an XO admin",
    )


async def test_a_wrong_ca_is_named_with_its_fix(cluster: Cluster) -> None:
    config = cluster.config(caFile=str(cluster.pki.other_ca_cert))

    outcome = await cluster.doctor(config=config)

    assert outcome.code == 1
    outcome.expect("fail", "xo.tls", cluster.xo.url, "TLS verification failed", fix="caFile")
    assert "insecure: true" in outcome.expect("fail", "xo.tls")["fix"]


async def test_an_unreadable_ca_file_is_named(cluster: Cluster, tmp_path: Path) -> None:
    outcome = await cluster.doctor(config=cluster.config(caFile=str(tmp_path / "no-ca.pem")))

    assert outcome.code == 1
    outcome.expect("fail", "xo.tls", cluster.xo.url, "no-ca.pem", fix="readable PEM")


async def test_insecure_tls_is_a_warning(cluster: Cluster) -> None:
    outcome = await cluster.doctor(config=cluster.config(caFile=None, insecure=True))

    assert outcome.code == 0
    outcome.expect("warn", "xo.url", cluster.xo.url, "not verified", fix="set caFile")


async def test_an_xo_without_events_endpoint_is_a_warning(cluster: Cluster) -> None:
    cluster.xo.faults.set(events_enabled=False)

    outcome = await cluster.doctor()

    assert outcome.code == 0
    outcome.expect("warn", "xo.events", cluster.xo.url, "no events endpoint", fix="5.113")


async def test_a_url_that_is_not_xo_is_named(cluster: Cluster) -> None:
    outcome = await cluster.doctor(config=cluster.config(url=cluster.xo.url + "/rest/v0"))

    assert outcome.code == 1
    outcome.expect("fail", "xo.reachable", "/rest/v0", "not XO's REST API", fix="without /rest/v0")


# -- Kubernetes ----------------------------------------------------------------------------
async def test_an_identity_missing_verbs_is_named(
    cluster: Cluster, kube: KubeClient, service_account: ServiceAccountFactory
) -> None:
    role = unique("doctor-reduced")
    await apply_object(
        kube,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]},
            ],
        },
    )
    limited = await service_account(name=unique("limited"), cluster_role=role)

    outcome = await cluster.doctor(kubeconfig=limited)

    assert outcome.code == 1
    who = "system:serviceaccount:kube-system:limited-"
    outcome.expect("fail", "kube.access", who, "may not patch, delete nodes", fix="rbac.yaml")
    outcome.expect("fail", "kube.access", who, "may not patch nodes/status")
    outcome.expect("fail", "kube.access", who, "create, update leases.coordination.k8s.io")
    outcome.expect("fail", "kube.access", who, "may not create, patch events in default")
    outcome.expect("fail", "kube.access", who, "get, create, update events.events.k8s.io")
    outcome.expect("ok", "kube.lease")
    outcome.expect("ok", "kube.nodes")


@pytest.mark.parametrize(
    ("lease", "phrase"),
    [
        ("absent", "no such Lease"),
        ("stale", "last renewed 10m ago (lease 15s): the leader is gone"),
        ("released", "nobody holds the Lease"),
    ],
)
async def test_a_lease_nobody_renews_is_named(cluster: Cluster, lease: str, phrase: str) -> None:
    if lease == "absent":
        await delete_lease(cluster.kube)
    else:
        await put_lease(
            cluster.kube, renewed_ago=600, holder="" if lease == "released" else "ccm-gone_1"
        )

    outcome = await cluster.doctor()

    assert outcome.code == 1
    outcome.expect("fail", "kube.lease", "kube-system/cloud-controller-manager", phrase)


async def test_the_lease_name_flags_pick_the_lease(cluster: Cluster) -> None:
    outcome = await cluster.doctor(
        "--leader-elect-resource-name", "cloud-controller-manager-xenorchestra"
    )

    outcome.expect(
        "fail", "kube.lease", "kube-system/cloud-controller-manager-xenorchestra", "no such Lease"
    )
    skipped = await cluster.doctor("--leader-elect=false")
    assert skipped.code == 0
    skipped.expect("ok", "kube.lease", "", "not checked")


async def test_an_unreachable_api_server_cannot_be_checked(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    dead = write_kubeconfig(
        tmp_path / "dead.kubeconfig",
        server=f"https://127.0.0.1:{free_port()}",
        ca_file=control_plane.ca_file,
        user="nobody",
        token="t0k3n-not-used",
    )
    outcome = await cluster.doctor(kubeconfig=dead)

    assert outcome.code == 2
    outcome.expect("unknown", "kube.api", "https://127.0.0.1", "cannot use the API server")
    outcome.expect("ok", "xo.admin")  # XO is still checked

    missing = await cluster.doctor(kubeconfig=tmp_path / "missing.kubeconfig")
    assert missing.code == 2
    missing.expect("unknown", "kube.api", "missing.kubeconfig", fix="--kubeconfig")


# -- nodes -----------------------------------------------------------------------------------
async def test_a_foreign_provider_id_is_named(cluster: Cluster) -> None:
    vm_id = cluster.add_vm("worker-1")
    await cluster.add_node(
        "worker-1", uninitialized=False, provider_id="vsphere://4230-abcd", system_uuid=vm_id
    )
    await cluster.add_node(
        "elsewhere-1",
        uninitialized=False,
        provider_id="aws:///eu-west-1a/i-0abc",
        system_uuid="0f4a29b7-7d53-4c39-9f61-1a8d2e5b3c70",
    )

    outcome = await cluster.doctor()

    assert outcome.code == 1
    outcome.expect(
        "fail", "node.providerID", "worker-1", "another provider's", vm_id, fix="delete the node"
    )
    outcome.expect("warn", "node.providerID", "elsewhere-1", "not ours", fix="not an XO VM")


async def test_a_ready_node_whose_vm_is_not_found_is_named(cluster: Cluster) -> None:
    vm_id = cluster.add_vm("worker-1")
    await cluster.add_initialized_nodes({"worker-1": vm_id})
    cluster.xo.state.delete_vm(vm_id)
    await cluster.add_node(
        "lost-1", system_uuid="0f4a29b7-7d53-4c39-9f61-1a8d2e5b3c70", uninitialized=True
    )

    outcome = await cluster.doctor()

    assert outcome.code == 1
    outcome.expect("fail", "node.vm", "worker-1", f"VM {vm_id} is gone", "yet the node is Ready")
    outcome.expect(
        "fail", "node.vm", "lost-1", "no VM found in XO", fix="/sys/class/dmi/id/product_uuid"
    )
    outcome.expect("fail", "node.init", "lost-1", "no VM found for it")


async def test_a_little_endian_system_uuid_finds_the_vm(cluster: Cluster) -> None:
    vm_id = cluster.add_vm("uefi-1")
    await cluster.add_node("uefi-1", uninitialized=True, system_uuid=swap_little_endian(vm_id))

    outcome = await cluster.doctor()

    assert outcome.code == 0
    outcome.expect("ok", "node.vm", "uefi-1", "little-endian form of systemUUID", vm_id)
    outcome.expect("ok", "node.init", "uefi-1", "being initialized")


async def test_a_node_stuck_with_the_uninitialized_taint_is_named(cluster: Cluster) -> None:
    vm_id = cluster.add_vm("worker-1")
    await cluster.add_node("worker-1", uninitialized=True, system_uuid=vm_id)

    outcome = await cluster.doctor("--uninitialized-grace", "0s")

    assert outcome.code == 1
    outcome.expect(
        "fail",
        "node.init",
        "worker-1",
        "uninitialized for",
        "the CCM is not initializing nodes",
        fix="kube.lease",
    )


async def test_a_node_without_provider_id_nor_taint_needs_the_kubelet_flag(
    cluster: Cluster,
) -> None:
    vm_id = cluster.add_vm("worker-1")
    await cluster.add_node("worker-1", uninitialized=False, system_uuid=vm_id)

    outcome = await cluster.doctor()

    assert outcome.code == 1
    outcome.expect(
        "fail",
        "node.providerID",
        "worker-1",
        "kubelet probably runs without --cloud-provider=external",
        fix="delete the node (kubectl delete node worker-1) and restart kubelet with "
        "--cloud-provider=external",
    )


async def test_labels_that_differ_from_xo_after_a_migration_are_named(cluster: Cluster) -> None:
    w = cluster.world
    vm_id = cluster.add_vm("worker-1", host_id=w.host_a1)
    await cluster.add_initialized_nodes({"worker-1": vm_id})
    cluster.xo.state.migrate_vm(vm_id, host_id=w.host_a2)

    outcome = await cluster.doctor()

    assert outcome.code == 0
    outcome.expect(
        "warn",
        "node.labels",
        "worker-1",
        f"topology.kubernetes.io/zone: {w.host_a1} -> {w.host_a2}",
        f"topology.k8s.xenorchestra/host_id: {w.host_a1} -> {w.host_a2}",
        "topology.k8s.xenorchestra/host_name_label: host-a1 -> host-a2",
        fix="cloud-node-label-sync",
    )


async def test_host_zones_name_the_untagged_host_and_no_label_drift_inside_a_group(
    cluster: Cluster,
) -> None:
    w = cluster.world
    cluster.xo.state.tag_host(w.host_a1, tags=["k8s.zone=rack-a"])
    cluster.xo.state.tag_host(w.host_a2, tags=["k8s.zone=rack-a"])
    vm_id = cluster.add_vm("worker-1", host_id=w.host_a1)
    zones = CCMOptions(topology=TopologyOptions(zone_source=ZoneSource.HOST_TAG))
    await cluster.add_initialized_nodes({"worker-1": vm_id}, options=zones)
    config = cluster.config(zoneSource="hostTag")
    before = await cluster.doctor(config=config)
    cluster.xo.state.migrate_vm(vm_id, host_id=w.host_a2)

    outcome = await cluster.doctor(config=config)

    assert outcome.code == 0
    outcome.expect(
        "ok", "topology", "zoneSource, regionSource", "zone: the host tag k8s.zone=<zone>"
    )
    outcome.expect(
        "warn",
        "topology",
        f"host host b1 ({w.host_b1})",
        "no k8s.zone tag",
        fix="k8s.zone=<zone>",
    )
    # moved inside rack-a: the zone is in step, only the XO labels name the new host
    outcome.expect(
        "warn",
        "node.labels",
        "worker-1",
        f"topology.k8s.xenorchestra/host_id: {w.host_a1} -> {w.host_a2}",
    )
    assert "topology.kubernetes.io/zone" not in outcome.table
    assert "topology.kubernetes.io/zone" not in before.table


@pytest.mark.parametrize(
    ("mistake", "status", "phrases"),
    [
        ("deleted", "warn", ("is gone while pool", "cloud-node-lifecycle will delete this node")),
        ("pool-disconnected", "fail", ("protected", "pool disconnected, or its VMs not loaded?")),
        # review s9b: XO has the pool again without its VMs (a failed VM fetch)
        ("pool-back-without-vms", "fail", ("protected", "are unknown to XO")),
        ("halted", "warn", ("its VM is Halted", "will get the node.cloudprovider")),
        ("running", "warn", ("although its VM runs", "kubelet")),
    ],
)
async def test_what_the_lifecycle_controller_will_do_with_a_not_ready_node(
    cluster: Cluster, mistake: str, status: str, phrases: tuple[str, ...]
) -> None:
    w = cluster.world
    host = w.host_b1 if mistake.startswith("pool-") else w.host_a1
    vm_id = cluster.add_vm("worker-1", host_id=host)
    cluster.add_vm("other-a", host_id=w.host_a2)  # pool A stays visible whatever happens
    await cluster.add_initialized_nodes({"worker-1": vm_id}, ready="False")
    if mistake == "deleted":
        cluster.xo.state.delete_vm(vm_id)
    elif mistake.startswith("pool-"):
        cluster.xo.state.disconnect_pool(w.pool_b)
        if mistake == "pool-back-without-vms":
            cluster.xo.state.reconnect_pool(w.pool_b, vms_loaded=False)
    elif mistake == "halted":
        cluster.xo.state.stop_vm(vm_id)

    outcome = await cluster.doctor()

    assert outcome.code == (1 if status == "fail" else 0)
    outcome.expect(status, "node.lifecycle", "worker-1", "NotReady (False)", *phrases)


# -- cost ----------------------------------------------------------------------------------
async def test_xo_requests_do_not_grow_with_the_number_of_nodes(cluster: Cluster) -> None:
    vms = cluster.xo.state.populate(count=200, pool_id=cluster.world.pool_a, prefix="worker")
    names = {vm["name_label"]: vm["id"] for vm in vms}
    argv = ["--cloud-config", str(cluster.config()), "--kubeconfig", str(cluster.kubeconfig)]
    counts: dict[int, dict[str, int]] = {}
    kube_counts: dict[int, dict[str, int]] = {}
    first = dict(list(names.items())[:20])
    for size, batch in ((20, first), (200, {k: v for k, v in names.items() if k not in first})):
        await cluster.add_initialized_nodes(batch)
        cluster.xo.requests.reset()
        code, text = await run_doctor(*argv, "--output", "json")
        document = json.loads(text)
        assert code == 0, text
        assert f"{size} nodes listed" in text
        counts[size] = cluster.xo.requests.snapshot()
        kube_counts[size] = document["requests"]["kubernetes"]
        assert document["requests"]["xo"] == counts[size]

    assert counts[20] == counts[200], counts
    # ping, credentials, three lists, /users/me and its redirect, the event stream
    assert sum(counts[200].values()) <= 8, counts[200]
    assert kube_counts[20] == kube_counts[200], kube_counts
    print(f"XO requests, 20 nodes: {counts[20]}; 200 nodes: {counts[200]}")
    print(f"Kubernetes requests, 20 nodes: {kube_counts[20]}; 200 nodes: {kube_counts[200]}")


# -- the deletion breaker's reset ---------------------------------------------------------
async def test_reset_deletion_breaker_rearms_it_as_the_ccms_identity(cluster: Cluster) -> None:
    """The reset the runbook names: with the CCM's own identity (the shipped Roles),
    a tripped breaker's Lease is armed again and its window emptied."""
    store = KubernetesBreakerStore(cluster.kube, leader_lease=LEASE_NAME, namespace=LEASE_NAMESPACE)
    tripped = BreakerState((1_790_000_000.0,) * 5, tripped_at=1_790_000_100.0)
    await store.save(state=tripped, version="")
    try:
        code, out = await run_doctor(
            "--reset-deletion-breaker",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--leader-elect-resource-name",
            LEASE_NAME,
        )
        assert code == 0, out
        assert (
            f"deletion breaker reset (Lease {LEASE_NAMESPACE}/{LEASE_NAME}-deletion-breaker)" in out
        )
        assert "it was tripped (since 2026-09-21T" in out and "5 deletions recorded" in out
        assert (await store.load()).state == ARMED
        # once more: nothing to reset, still exit 0
        code, out = await run_doctor(
            "--reset-deletion-breaker",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--leader-elect-resource-name",
            LEASE_NAME,
        )
        assert code == 0 and "it was armed with 0 deletions recorded" in out, out
    finally:
        await cluster.kube.request("DELETE", f"{LEASE_PATH}/{LEASE_NAME}-deletion-breaker")


# -- the kubelet serving CSR approver --------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "expectations"),
    [
        pytest.param(
            (),
            [
                (
                    "warn",
                    "kubelet serving CSRs",
                    ("approver off", "2 requests pending"),
                    "--controllers=*,cloud-node-csr-approval",
                )
            ],
            id="approver-off-kubelets-wait",
        ),
        pytest.param(
            ("--controllers=*,cloud-node-csr-approval",),
            [
                ("ok", "kubelet serving CSRs", ("approver on", "2 requests pending"), ""),
                ("warn", "{good}", ("passes every check, yet pending",), "leads"),
                ("warn", "{bad}", ("IP address(es) 10.40.0.99 are not among VM",), "deny"),
            ],
            id="approver-on-each-pending-request-judged",
        ),
    ],
)
async def test_the_csr_approvers_state_and_the_pending_requests(
    cluster: Cluster,
    control_plane: ControlPlane,
    flags: tuple[str, ...],
    expectations: list[tuple[str, str, tuple[str, ...], str]],
) -> None:
    from tests.integration.kubelet_csr import (
        CSRS,
        allow_nodes_to_request,
        file_request,
        kubelet_client,
        serving_request,
    )

    node = unique("worker")
    vm_id = cluster.add_vm(node, addresses={"0/ipv4/0": "10.40.0.5"})
    await cluster.add_initialized_nodes({node: vm_id})
    names = {"good": unique("csr-good"), "bad": unique("csr-bad")}
    await allow_nodes_to_request(cluster.kube)
    async with await kubelet_client(control_plane, node) as kubelet:
        await file_request(
            kubelet, names["good"], serving_request(node, dns=[node], ips=["10.40.0.5"])
        )
        await file_request(
            kubelet, names["bad"], serving_request(node, dns=[node], ips=["10.40.0.99"])
        )
    try:
        outcome = await cluster.doctor(*flags)
    finally:
        for name in names.values():
            await cluster.kube.request("DELETE", f"{CSRS}/{name}")

    assert outcome.code == 0, outcome.table  # warnings only
    for status, subject, phrases, fix in expectations:
        outcome.expect(status, "kube.csr", subject.format(**names), *phrases, fix=fix)
    if flags:
        outcome.expect("ok", "kube.access", "xenorchestra-cloud-controller-manager", "all 19")
