"""The decisions of ``doctor`` (entrypoints.doctor), table by table, without any server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
import yaml

from domain import labels
from domain.certificates import CertificateRequest, CSRState
from domain.matching import MatchedBy, VMIndex
from domain.model import VM, InventorySnapshot, Node, PowerState, Readiness, Taint, TaintEffect
from domain.options import CCMOptions
from domain.policies.initialization import plan_initialization
from domain.policies.metadata import instance_metadata
from domain.policies.system_uuid import swap_little_endian
from entrypoints.doctor.config import config_invalid, config_unreadable, diagnose_config
from entrypoints.doctor.csr import diagnose_csr_approval
from entrypoints.doctor.findings import (
    Finding,
    Status,
    condense,
    exit_code,
    fail,
    format_age,
    ok,
    redact_url,
    summarize,
)
from entrypoints.doctor.kube import LeaseInfo, diagnose_lease, lease_unreadable
from entrypoints.doctor.nodes import diagnose_nodes, find_vm, ranked_placement_pools
from entrypoints.doctor.rbac import Permission, diagnose_access, required_permissions
from entrypoints.doctor.xo import (
    ProbeAnswer,
    XOProblem,
    diagnose_events,
    diagnose_xo_access,
    diagnose_xo_failure,
)
from tests.integration.kube import RBAC_MANIFEST
from tests.unit.factories import (
    HOST_1,
    HOST_2,
    POOL_A,
    POOL_B,
    UNINITIALIZED,
    VM_1,
    VM_2,
    host,
    pool,
    vm,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VM_3 = "0f4a29b7-7d53-4c39-9f61-1a8d2e5b3c70"  # known to nobody
SHUTDOWN = Taint(key=labels.SHUTDOWN_TAINT.key, effect=TaintEffect.NO_SCHEDULE)

SNAPSHOT = InventorySnapshot(
    vms={
        VM_1: vm(),
        VM_2: vm(id=VM_2, name_label="worker-2", power_state=PowerState.HALTED, container=POOL_A),
    },
    hosts={HOST_1: host(), HOST_2: host(HOST_2, "xcp-host-2")},
    pools={POOL_A: pool()},
)


def pid(vm_id: str = VM_1, pool_id: str = POOL_A) -> str:
    return f"xenorchestra://{pool_id}/{vm_id}"


def registered(name: str = "worker-1", **fields: object) -> Node:
    """A node as kubelet registers it: tainted, no providerID, created 10 s ago."""
    base: dict[str, object] = dict(
        name=name,
        system_uuid=VM_1,
        labels=MappingProxyType({"kubernetes.io/hostname": name}),
        taints=(UNINITIALIZED,),
        readiness=Readiness.TRUE,
        created_at=NOW - timedelta(seconds=10),
    )
    base.update(fields)
    return Node(**base)  # type: ignore[arg-type]


def initialized(name: str = "worker-1", vm_id: str = VM_1, **fields: object) -> Node:
    """The node as the CCM leaves it once initialized from SNAPSHOT."""
    node = registered(name, system_uuid=vm_id)
    machine = SNAPSHOT.vms[vm_id]
    metadata = instance_metadata(
        vm=machine,
        host=SNAPSHOT.hosts.get(machine.container),
        pool=SNAPSHOT.pools.get(machine.pool_id),
        node=node,
    )
    done = plan_initialization(node=node, metadata=metadata).change.apply(node)
    return replace(done, **fields)  # type: ignore[arg-type]


def relabeled(node: Node, **changes: str) -> Node:
    return replace(node, labels=MappingProxyType({**node.labels, **changes}))


Expected = tuple[str, str, str]  # (status, check, phrase in the message)


def assert_findings(found: Sequence[Finding], expected: Sequence[Expected]) -> None:
    got = [(f.status.value, f.check, f.message) for f in found]
    assert len(got) == len(expected), got
    for (status, check, message), (want_status, want_check, phrase) in zip(
        got, expected, strict=True
    ):
        assert (status, check) == (want_status, want_check), got
        assert phrase in message, (phrase, message)


# -- the verdict -------------------------------------------------------------------------
def f(status: Status, check: str = "c") -> Finding:
    return Finding(status, check, "s", "m")


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((), 0),
        ((Status.OK,), 0),
        ((Status.OK, Status.WARN), 0),
        ((Status.WARN, Status.FAIL), 1),
        ((Status.FAIL, Status.UNKNOWN), 2),
        ((Status.OK, Status.UNKNOWN), 2),
    ],
)
def test_exit_code_is_2_when_incomplete_then_1_when_failing_else_0(
    statuses: tuple[Status, ...], code: int
) -> None:
    findings = [f(s) for s in statuses]
    assert exit_code(findings) == code
    assert summarize(findings).exit_code == code
    assert summarize(findings).text.endswith(f"(exit {code})")


def test_the_summary_counts_each_status() -> None:
    summary = summarize([f(Status.OK), f(Status.OK), f(Status.WARN), f(Status.FAIL)])

    assert summary.counts == {Status.OK: 2, Status.WARN: 1, Status.FAIL: 1, Status.UNKNOWN: 0}
    assert summary.text == (
        "2 ✔ ok, 1 ! warning, 1 ✗ to fix, 0 ? not checked: something to fix (exit 1)"
    )


def test_routine_node_oks_fold_into_one_line_per_check() -> None:
    findings = [
        f(Status.OK, "config"),
        ok("node.vm", "a", "VM a", routine=True),
        fail("node.vm", "b", "no VM", "fix"),
        ok("node.vm", "c", "VM c", routine=True),
        ok("node.init", "d", "being initialized"),
    ]

    folded = condense(findings)

    assert [(x.check, x.subject, x.message) for x in folded] == [
        ("config", "s", "m"),
        ("node.vm", "2 nodes", "2 of 3 nodes ok"),
        ("node.vm", "b", "no VM"),
        ("node.init", "d", "being initialized"),
    ]
    assert exit_code(folded) == exit_code(findings)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (372, "6m12s"),
        (600, "10m"),
        (3600, "1h"),
        (3900, "1h05m"),
        (86400, "1d"),
        (93600, "1d2h"),
    ],
)
def test_ages_read_like_kubectl(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://xo.example.org", "https://xo.example.org"),
        ("https://admin:s3cret@xo.example.org/x", "https://***@xo.example.org/x"),
        ("xo.example.org", "xo.example.org"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# -- config -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "fix"),
    [
        ("url: url 'xo' must start with http:// or https:// and name a host", "https://xo."),
        ("config: set either token or username/password, not both", "keep one method"),
        ("config: set token, or username and password", "set token"),
        ("Token: unknown key", "case-sensitive"),
        ("not valid YAML: mapping values are not allowed here", "YAML mapping"),
        ("clientTimeout: Input should be greater than 0", "correct the key"),
    ],
)
def test_an_invalid_config_gets_the_fix_for_its_key(message: str, fix: str) -> None:
    finding = config_invalid("cloud config /etc/xo.yaml", f"cloud config /etc/xo.yaml: {message}")

    assert (finding.status, finding.check, finding.message) == (Status.FAIL, "config", message)
    assert fix in finding.fix


def test_an_unreadable_config_means_nothing_could_be_checked() -> None:
    finding = config_unreadable("cloud config /etc/xo.yaml", "cannot read: No such file")

    assert finding.status is Status.UNKNOWN


@pytest.mark.parametrize(
    ("url", "insecure", "ca_file", "status", "phrase"),
    [
        ("https://xo", False, "/etc/ca.pem", Status.OK, "verified against caFile /etc/ca.pem"),
        ("https://xo", False, "", Status.OK, "verified against the system CAs"),
        ("https://xo", True, "", Status.WARN, "not verified"),
        ("http://xo", False, "", Status.WARN, "plain http"),
        ("HTTP://xo", True, "", Status.WARN, "plain http"),
    ],
)
def test_how_xo_is_reached_is_judged(
    url: str, insecure: bool, ca_file: str, status: Status, phrase: str
) -> None:
    parsed, reached = diagnose_config(
        origin="cloud config f", url=url, insecure=insecure, ca_file=ca_file, auth_method="token"
    )

    assert parsed.status is Status.OK and parsed.message == "parses (token authentication)"
    assert (reached.status, reached.check) == (status, "xo.url")
    assert phrase in reached.message


# -- Xen Orchestra --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("problem", "ca_file", "status", "check", "fix"),
    [
        (XOProblem.CA_FILE, "/x.pem", Status.FAIL, "xo.tls", "readable PEM"),
        (XOProblem.TLS, "/x.pem", Status.FAIL, "xo.tls", "caFile /x.pem is not the CA"),
        (XOProblem.TLS, "", Status.FAIL, "xo.tls", "insecure: true"),
        (XOProblem.UNREACHABLE, "", Status.UNKNOWN, "xo.reachable", "check url"),
        (XOProblem.NOT_XO, "", Status.FAIL, "xo.reachable", "without /rest/v0"),
        (XOProblem.REFUSED, "", Status.FAIL, "xo.token", "new token for an XO admin"),
        (XOProblem.FORBIDDEN, "", Status.FAIL, "xo.admin", "token of an XO admin"),
        (XOProblem.PROTOCOL, "", Status.FAIL, "xo.reachable", "not an HTML login page"),
    ],
)
def test_each_xo_failure_is_named_with_its_fix(
    problem: XOProblem, ca_file: str, status: Status, check: str, fix: str
) -> None:
    finding = diagnose_xo_failure(
        problem, url="https://u:p@xo", detail="the detail", ca_file=ca_file
    )

    assert (finding.status, finding.check, finding.subject) == (status, check, "https://***@xo")
    assert "the detail" in finding.message
    assert fix in finding.fix


@pytest.mark.parametrize(
    ("pools", "probe", "status", "phrase"),
    [
        (2, None, Status.OK, "lists 5 VMs, 1 host, 2 pools"),
        (0, ProbeAnswer.FORBIDDEN, Status.FAIL, f"answers 403 for pool {POOL_A}"),
        (0, ProbeAnswer.NOT_FOUND, Status.FAIL, f"does not know pool {POOL_A}"),
        (0, None, Status.FAIL, "not an admin's (non-admins see only what their ACLs allow)"),
    ],
)
def test_an_admin_sees_pools_and_a_non_admin_is_told_apart(
    pools: int, probe: ProbeAnswer | None, status: Status, phrase: str
) -> None:
    finding = diagnose_xo_access(
        url="https://xo", vms=5, hosts=1, pools=pools, probe_pool=POOL_A, probe=probe
    )

    assert (finding.status, finding.check) == (status, "xo.admin")
    assert phrase in finding.message


@pytest.mark.parametrize(
    ("admin_view", "probe", "status", "phrase"),
    [
        (True, None, Status.OK, "XO says the credentials are an admin's"),
        (False, None, Status.FAIL, "cloud-node-lifecycle deletes no node while they are used"),
        (False, ProbeAnswer.FORBIDDEN, Status.FAIL, f"answers 403 for pool {POOL_A}"),
        (None, None, Status.WARN, "XO could not say whether the credentials are an admin's"),
    ],
)
def test_xo_s_own_word_on_the_credentials_is_reported(
    admin_view: bool | None, probe: ProbeAnswer | None, status: Status, phrase: str
) -> None:
    # An ACL-limited token lists the pools it may see: only XO's user record tells.
    finding = diagnose_xo_access(
        url="https://xo",
        vms=5,
        hosts=1,
        pools=1,
        probe_pool=POOL_A,
        probe=probe,
        admin_view=admin_view,
        admin_detail="GET /users/me: 500",
    )

    assert (finding.status, finding.check) == (status, "xo.admin")
    assert phrase in finding.message


@pytest.mark.parametrize(
    ("available", "status", "phrase"),
    [
        (True, Status.OK, "follows VM changes live"),
        (False, Status.WARN, "older than 5.113"),
        (None, Status.WARN, "could not open"),
    ],
)
def test_a_missing_events_endpoint_is_a_warning(
    available: bool | None, status: Status, phrase: str
) -> None:
    finding = diagnose_events("https://xo", available=available, detail="boom")

    assert (finding.status, finding.check) == (status, "xo.events")
    assert phrase in finding.message


# -- Kubernetes ---------------------------------------------------------------------------
def test_the_permissions_checked_are_exactly_the_shipped_roles() -> None:
    manifests = yaml.safe_load_all(RBAC_MANIFEST.read_text(encoding="utf-8"))
    roles = [m for m in manifests if m and m["kind"] in ("ClusterRole", "Role")]
    shipped = {
        (group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    checked = {
        (p.group, f"{p.resource}/{p.subresource}" if p.subresource else p.resource, p.verb)
        for p in required_permissions(csr_approval=True)
    }
    by_default = {
        (p.group, f"{p.resource}/{p.subresource}" if p.subresource else p.resource, p.verb)
        for p in required_permissions()
    }

    assert checked == shipped
    assert {g for g in shipped - by_default} == {
        ("certificates.k8s.io", "certificatesigningrequests", "get"),
        ("certificates.k8s.io", "certificatesigningrequests", "list"),
        ("certificates.k8s.io", "certificatesigningrequests", "watch"),
        ("certificates.k8s.io", "certificatesigningrequests/approval", "update"),
        ("certificates.k8s.io", "signers", "approve"),
    }


def test_permissions_follow_the_lease_namespace() -> None:
    leases = [p for p in required_permissions(lease_namespace="ccm") if p.resource == "leases"]

    assert {p.namespace for p in leases} == {"ccm"}


SA = "system:serviceaccount:kube-system:xo-ccm"


@pytest.mark.parametrize(
    ("identity", "denied", "undecided", "expected"),
    [
        (SA, (), (), [("ok", "kube.access", "may make all 14 kinds")]),
        ("admin", (), (), [("ok", "kube.access", "doctor's own identity")]),
        (
            SA,
            (("delete", "nodes"), ("patch", "nodes"), ("update", "leases.coordination.k8s.io")),
            (),
            [
                ("fail", "kube.access", "may not patch, delete nodes: the CCM needs it"),
                ("fail", "kube.access", "may not update leases.coordination.k8s.io in kube-system"),
            ],
        ),
        (
            SA,
            (),
            (("get", "leases.coordination.k8s.io"),),
            [("unknown", "kube.access", "get leases")],
        ),
    ],
)
def test_each_verb_the_identity_lacks_is_named(
    identity: str,
    denied: tuple[tuple[str, str], ...],
    undecided: tuple[tuple[str, str], ...],
    expected: list[Expected],
) -> None:
    def answer(p: Permission) -> bool | None:
        if (p.verb, p.resource_name) in undecided:
            return None
        return (p.verb, p.resource_name) not in denied

    found = diagnose_access(identity, {p: answer(p) for p in required_permissions()})

    assert_findings(found, expected)
    assert all(identity in x.fix for x in found if x.status is Status.FAIL)


@pytest.mark.parametrize(
    ("lease", "status", "phrase"),
    [
        (None, Status.FAIL, "no such Lease"),
        (LeaseInfo("", NOW - timedelta(minutes=3), 15), Status.FAIL, "released 3m ago"),
        (LeaseInfo("ccm-1", None, 15), Status.FAIL, "never renewed"),
        (LeaseInfo("ccm-1", NOW - timedelta(seconds=2), 15), Status.OK, "renewed 2s ago"),
        (LeaseInfo("ccm-1", NOW - timedelta(seconds=15), 15), Status.OK, "held by ccm-1"),
        (LeaseInfo("ccm-1", NOW - timedelta(seconds=16), 15), Status.FAIL, "last renewed 16s"),
        (LeaseInfo("ccm-1", NOW - timedelta(hours=2), 60), Status.FAIL, "the leader is gone"),
        (LeaseInfo("ccm-1", NOW + timedelta(seconds=3), 15), Status.OK, "renewed 0s ago"),
    ],
    ids=["absent", "released", "never", "fresh", "edge", "stale", "hours", "skewed"],
)
def test_the_lease_must_be_held_and_renewed_in_time(
    lease: LeaseInfo | None, status: Status, phrase: str
) -> None:
    finding = diagnose_lease(lease, namespace="kube-system", name="ccm", now=NOW)

    assert (finding.status, finding.check, finding.subject) == (
        status,
        "kube.lease",
        "kube-system/ccm",
    )
    assert phrase in finding.message


# -- finding a node's VM in one snapshot ------------------------------------------------------
INDEX = VMIndex(SNAPSHOT)
SWAPPED = swap_little_endian(VM_1)


@pytest.mark.parametrize(
    ("node", "match_by_name", "vm_id", "how", "pool_id", "pool_known"),
    [
        (registered(provider_id=pid()), False, VM_1, MatchedBy.PROVIDER_ID, POOL_A, True),
        (registered(provider_id=pid().upper().replace("XENORCHESTRA", "xenorchestra")), False,
         VM_1, MatchedBy.PROVIDER_ID, POOL_A, True),
        (registered(provider_id=pid(VM_3)), False, None, None, POOL_A, True),
        (registered(provider_id=pid(VM_3, POOL_B)), False, None, None, POOL_B, False),
        (registered(provider_id=f"xenorchestra:///{VM_3}"), False, None, None, "", False),
        (registered(provider_id=f"xenorchestra:///{VM_3}",
                    labels={labels.REGION: POOL_A}), False, None, None, POOL_A, True),
        (registered(), False, VM_1, MatchedBy.SYSTEM_UUID, POOL_A, True),
        (registered(system_uuid=SWAPPED.upper()), False, VM_1, MatchedBy.SYSTEM_UUID_SWAPPED,
         POOL_A, True),
        (registered(system_uuid=VM_3), False, None, None, "", False),
        (registered(name="worker-1", system_uuid=""), True, VM_1, MatchedBy.NAME_LABEL, POOL_A,
         True),
        (registered(provider_id="vsphere://42"), False, VM_1, MatchedBy.SYSTEM_UUID, POOL_A,
         True),
        (registered(provider_id="xenorchestra://nope"), False, None, None, "", False),
    ],
    ids=[
        "provider-id", "provider-id-upper-case", "gone-pool-known", "gone-pool-unknown",
        "no-pool", "region-label-pool", "system-uuid", "little-endian", "nowhere", "by-name",
        "foreign", "malformed",
    ],
)  # fmt: skip
def test_the_vm_is_found_in_the_snapshot_as_the_ccm_finds_it(
    node: Node,
    match_by_name: bool,
    vm_id: str | None,
    how: MatchedBy | None,
    pool_id: str,
    pool_known: bool,
) -> None:
    lookup = find_vm(node, INDEX, match_by_name=match_by_name)

    assert (lookup.vm.id if lookup.vm else None, lookup.matched_by) == (vm_id, how)
    # The pools the absence is judged by (the node's placement pools, and the found
    # VM's own): here at most one, known or not.
    assert lookup.pools == (frozenset({pool_id}) if pool_id else frozenset())
    assert lookup.unknown_pools == (() if pool_known or not pool_id else (pool_id,))


def test_the_little_endian_twin_is_tried_after_the_uuid_itself() -> None:
    lookup = find_vm(registered(system_uuid=VM_3), INDEX)

    assert lookup.tried == (VM_3, swap_little_endian(VM_3))


def test_several_vms_with_the_node_name_are_ambiguous() -> None:
    twins = InventorySnapshot(vms={VM_1: vm(), VM_2: vm(id=VM_2)}, hosts={}, pools={POOL_A: pool()})

    lookup = find_vm(registered(system_uuid=""), VMIndex(twins), match_by_name=True)

    assert lookup.vm is None and lookup.ambiguous == tuple(sorted((VM_1, VM_2)))


# -- one node ----------------------------------------------------------------------------------
WORKER = initialized()
MIGRATED = InventorySnapshot(
    vms={**SNAPSHOT.vms, VM_1: vm(container=HOST_2)}, hosts=SNAPSHOT.hosts, pools=SNAPSHOT.pools
)
GONE = InventorySnapshot(vms={VM_2: SNAPSHOT.vms[VM_2]}, hosts=SNAPSHOT.hosts, pools=SNAPSHOT.pools)
POOL_LOST = InventorySnapshot(vms={}, hosts={}, pools={})
NOT_READY = Readiness.FALSE
OK_INITIALIZED: list[Expected] = [
    ("ok", "node.providerID", pid()),
    ("ok", "node.vm", "VM worker-1"),
    ("ok", "node.labels", "labels match XO"),
]


@pytest.mark.parametrize(
    ("node", "snapshot", "expected"),
    [
        (WORKER, SNAPSHOT, OK_INITIALIZED),
        (
            registered(taints=()),
            SNAPSHOT,
            [
                ("fail", "node.providerID", "kubelet probably runs without --cloud-provider"),
                ("ok", "node.vm", "found by systemUUID"),
            ],
        ),
        (
            registered(),
            SNAPSHOT,
            [
                ("ok", "node.providerID", "not set yet"),
                ("ok", "node.vm", "found by systemUUID"),
                ("ok", "node.init", "uninitialized for 10s: being initialized"),
            ],
        ),
        (
            registered(created_at=NOW - timedelta(minutes=12)),
            SNAPSHOT,
            [
                ("ok", "node.providerID", "not set yet"),
                ("ok", "node.vm", "found by systemUUID"),
                ("fail", "node.init", "uninitialized for 12m although its VM is found"),
            ],
        ),
        (
            registered(system_uuid=SWAPPED),
            SNAPSHOT,
            [
                ("ok", "node.providerID", "not set yet"),
                ("ok", "node.vm", "little-endian form of systemUUID"),
                ("ok", "node.init", "being initialized"),
            ],
        ),
        (
            registered(system_uuid=VM_3),
            SNAPSHOT,
            [
                ("ok", "node.providerID", "not set yet"),
                ("fail", "node.vm", f"no VM found in XO ({VM_3}, {swap_little_endian(VM_3)})"),
                ("fail", "node.init", "uninitialized for 10s: no VM found for it"),
            ],
        ),
        (
            registered(annotations={labels.PROVIDED_NODE_IP: "192.168.9.9"}),
            SNAPSHOT,
            [
                ("ok", "node.providerID", "not set yet"),
                ("ok", "node.vm", "found by systemUUID"),
                ("fail", "node.init", "provided node IP(s) 192.168.9.9 not among"),
            ],
        ),
        (
            registered(taints=(), provider_id="vsphere://42"),
            SNAPSHOT,
            [("fail", "node.providerID", "another provider's, yet the node is VM worker-1")],
        ),
        (
            registered(taints=(), provider_id="vsphere://42", system_uuid=VM_3),
            SNAPSHOT,
            [("warn", "node.providerID", "is not ours")],
        ),
        (
            registered(taints=(), provider_id="xenorchestra://pool/not-a-uuid"),
            SNAPSHOT,
            [("fail", "node.providerID", "cannot find its VM")],
        ),
        (
            WORKER,
            MIGRATED,
            [
                ("ok", "node.providerID", pid()),
                ("ok", "node.vm", "VM worker-1"),
                ("warn", "node.labels", f"topology.kubernetes.io/zone: {HOST_1} -> {HOST_2}"),
            ],
        ),
        (
            initialized("worker-2", VM_2),
            SNAPSHOT,
            [
                ("ok", "node.providerID", pid(VM_2)),
                ("ok", "node.vm", "Halted"),
                ("ok", "node.labels", "labels match XO"),  # a halted VM's pool is no zone
            ],
        ),
        (
            relabeled(WORKER, **{labels.INSTANCE_TYPE: "1vCPU-1GB"}),
            SNAPSHOT,
            [
                ("ok", "node.providerID", pid()),
                ("ok", "node.vm", "VM worker-1"),
                ("warn", "node.labels", "node.kubernetes.io/instance-type: 1vCPU-1GB -> 2vCPU-4GB"),
            ],
        ),
        (
            initialized(system_uuid=VM_2),
            SNAPSHOT,
            [
                ("ok", "node.providerID", pid()),
                ("warn", "node.vm", "registered by another VM"),
                ("ok", "node.labels", "labels match XO"),
            ],
        ),
        (
            initialized(system_uuid=SWAPPED),
            SNAPSHOT,
            OK_INITIALIZED,
        ),
        (
            WORKER,
            GONE,
            [
                ("ok", "node.providerID", pid()),
                ("fail", "node.vm", "yet the node is Ready"),
            ],
        ),
        (
            WORKER,
            POOL_LOST,
            [
                ("ok", "node.providerID", pid()),
                ("fail", "node.vm", f"protected: VM {VM_1} and its pool {POOL_A} are unknown"),
            ],
        ),
        (
            initialized(provider_id=f"xenorchestra:///{VM_1}", labels={}),
            GONE,
            [
                ("ok", "node.providerID", f"xenorchestra:///{VM_1}"),
                ("fail", "node.vm", "no pool to tell a deletion from an outage"),
            ],
        ),
        (
            initialized(readiness=NOT_READY),
            GONE,
            [
                ("ok", "node.providerID", pid()),
                ("warn", "node.lifecycle", "cloud-node-lifecycle will delete this node"),
            ],
        ),
        (
            initialized(readiness=Readiness.UNKNOWN),
            POOL_LOST,
            [
                ("ok", "node.providerID", pid()),
                ("fail", "node.lifecycle", "NotReady (Unknown), protected"),
            ],
        ),
        (
            initialized(readiness=NOT_READY, provider_id=f"xenorchestra:///{VM_1}", labels={}),
            GONE,
            [
                ("ok", "node.providerID", f"xenorchestra:///{VM_1}"),
                ("fail", "node.lifecycle", "no pool to confirm a deletion with"),
            ],
        ),
        (
            initialized("worker-2", VM_2, readiness=NOT_READY),
            SNAPSHOT,
            [
                ("ok", "node.providerID", pid(VM_2)),
                ("ok", "node.vm", "Halted"),
                ("warn", "node.lifecycle", "will get the node.cloudprovider.kubernetes.io"),
                ("ok", "node.labels", "labels match XO"),
            ],
        ),
        (
            initialized("worker-2", VM_2, readiness=NOT_READY, taints=(SHUTDOWN,)),
            SNAPSHOT,
            [
                ("ok", "node.providerID", pid(VM_2)),
                ("ok", "node.vm", "Halted"),
                ("warn", "node.lifecycle", "carries the node.cloudprovider.kubernetes.io"),
                ("ok", "node.labels", "labels match XO"),
            ],
        ),
        (
            initialized(readiness=Readiness.MISSING),
            SNAPSHOT,
            [
                ("ok", "node.providerID", pid()),
                ("ok", "node.vm", "VM worker-1"),
                ("warn", "node.lifecycle", "NotReady (Missing) although its VM runs"),
                ("ok", "node.labels", "labels match XO"),
            ],
        ),
    ],
    ids=[
        "healthy", "no-kubelet-flag", "initializing", "stuck", "little-endian", "no-vm",
        "wrong-node-ip", "foreign-but-xo", "foreign", "malformed", "zone-drift",
        "halted-no-zone-drift", "resized", "cloned", "little-endian-initialized", "ready-vm-gone",
        "ready-pool-lost", "ready-no-pool", "not-ready-vm-gone", "not-ready-pool-lost",
        "not-ready-no-pool", "not-ready-halted", "not-ready-halted-tainted", "not-ready-running",
    ],
)  # fmt: skip
def test_each_node_is_judged_by_the_controllers_rules(
    node: Node, snapshot: InventorySnapshot, expected: list[Expected]
) -> None:
    assert_findings(diagnose_nodes([node], snapshot, now=NOW), expected)


@pytest.mark.parametrize(
    ("grace", "status"), [(601.0, Status.OK), (600.0, Status.FAIL), (0.0, Status.FAIL)]
)
def test_a_node_is_stuck_once_tainted_longer_than_the_grace(grace: float, status: Status) -> None:
    node = registered(created_at=NOW - timedelta(minutes=10))

    found = diagnose_nodes([node], SNAPSHOT, now=NOW, uninitialized_grace=grace)

    assert [x.status for x in found if x.check == "node.init"] == [status]


def test_without_xo_only_what_the_node_object_tells_is_checked() -> None:
    nodes = [
        WORKER,
        registered("w-2", taints=()),
        registered("w-3", created_at=NOW - timedelta(hours=1)),
    ]

    found = diagnose_nodes(nodes, None, now=NOW)

    assert_findings(
        found,
        [
            ("fail", "node.providerID", "kubelet probably runs without"),
            ("ok", "node.providerID", "not set yet"),
            ("fail", "node.init", "uninitialized for 1h the CCM is not initializing it"),
            ("ok", "node.providerID", pid()),
            ("warn", "node.vm", "not checked against XO"),
        ],
    )
    assert found[-1].subject == "3 nodes"


def test_invalid_vm_tags_are_named() -> None:
    tagged = InventorySnapshot(
        vms={VM_1: vm(tags=("k8s.label/bad key=x",))}, hosts=SNAPSHOT.hosts, pools=SNAPSHOT.pools
    )

    found = diagnose_nodes([WORKER], tagged, now=NOW)

    assert ("warn", "node.tags") in [(x.status.value, x.check) for x in found]


def test_match_by_name_follows_the_cloud_config() -> None:
    node = registered(system_uuid="")
    by_name = CCMOptions(match_by_name=True)

    assert_findings(
        diagnose_nodes([node], SNAPSHOT, now=NOW, options=by_name),
        [
            ("ok", "node.providerID", "not set yet"),
            ("ok", "node.vm", "found by name (matchByName)"),
            ("ok", "node.init", "being initialized"),
        ],
    )
    without = diagnose_nodes([node], SNAPSHOT, now=NOW)
    assert "set matchByName: true" in next(x.fix for x in without if x.check == "node.vm")


def test_the_pools_the_nodes_were_placed_in_are_ranked_most_named_first() -> None:
    nodes = [
        initialized("a"),
        initialized("b"),
        registered("c", provider_id=pid(VM_3, POOL_B)),
        registered("d", provider_id="vsphere://1"),
        registered("e", provider_id=f"xenorchestra:///{VM_3}"),
    ]

    assert ranked_placement_pools(nodes) == [POOL_A, POOL_B]


def test_node_lookups_are_dict_lookups_in_one_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """5,000 nodes against 5,000 VMs: no scan per node (the name index is never built)."""
    vms = {f"{i:08x}-0000-4000-8000-000000000000": vm(id=f"{i:08x}-0000-4000-8000-000000000000")
           for i in range(5000)}  # fmt: skip
    snapshot = InventorySnapshot(vms=vms, hosts=SNAPSHOT.hosts, pools=SNAPSHOT.pools)
    nodes = [registered(f"n{i}", provider_id=pid(vm_id), taints=()) for i, vm_id in enumerate(vms)]
    calls: list[str] = []
    named: Callable[[VMIndex, str], list[VM]] = VMIndex.named

    def counting(self: VMIndex, name: str) -> list[VM]:
        calls.append(name)
        return named(self, name)

    monkeypatch.setattr(VMIndex, "named", counting)

    found = diagnose_nodes(nodes, snapshot, now=NOW)

    assert len(found) == 3 * 5000 and not calls


@pytest.mark.parametrize(("forbidden", "fix"), [(True, "may get leases"), (False, "again")])
def test_an_unreadable_lease_is_a_warning(forbidden: bool, fix: str) -> None:
    finding = lease_unreadable(
        namespace="kube-system", name="ccm", detail="403 Forbidden", forbidden=forbidden
    )

    assert (finding.status, finding.check) == (Status.WARN, "kube.lease")
    assert fix in finding.fix


# -- the kubelet serving CSR approver ------------------------------------------------------
def _csr(name: str, **fields: object) -> CertificateRequest:
    values: dict[str, object] = dict(
        name=name,
        username="system:node:worker-1",
        groups=("system:nodes",),
        usages=("digital signature", "server auth"),
        common_name="system:node:worker-1",
        organizations=("system:nodes",),
        dns_names=("worker-1",),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    values.update(fields)
    return CertificateRequest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("enabled", "requests", "expected"),
    [
        pytest.param(False, None, [("ok", "approver off")], id="off-unreadable"),
        pytest.param(False, [], [("ok", "approver off (--controllers")], id="off-none-pending"),
        pytest.param(
            False,
            [_csr("a"), _csr("b", state=CSRState.APPROVED)],
            [("warn", "and 1 request pending, the oldest for 1h")],
            id="off-one-waits",
        ),
        pytest.param(True, None, [("warn", "pending requests not checked")], id="on-unreadable"),
        pytest.param(True, [], [("ok", "approver on; none pending")], id="on-none-pending"),
        pytest.param(
            True,
            [_csr("a"), _csr("b", usages=("client auth",)), _csr("c", signer_name="x/y")],
            [
                ("ok", "approver on; 2 requests pending"),
                ("warn", "worker-1: IP"),
                ("warn", "worker-1: usages client auth are not a serving"),
            ],
            id="on-each-judged",
        ),
    ],
)
def test_the_csr_approver_finding(
    enabled: bool,
    requests: list[CertificateRequest] | None,
    expected: list[tuple[str, str]],
) -> None:
    vm = VM(
        id=VM_1,
        name_label="worker-1",
        power_state=PowerState.RUNNING,
        pool_id=POOL_A,
        container=HOST_1,
        cpus=2,
        memory_bytes=4 * 1024**3,
        main_ip_address="10.0.0.5",
    )
    snapshot = InventorySnapshot(vms={VM_1: vm}, hosts={}, pools={})
    node = Node(name="worker-1", provider_id=f"xenorchestra://{POOL_A}/{VM_1}")
    requests = (
        None
        if requests is None
        else [replace(r, ip_addresses=("10.0.0.9",)) if r.name == "a" else r for r in requests]
    )

    found = diagnose_csr_approval(
        enabled=enabled,
        requests=requests,
        problem="forbidden",
        nodes=[node],
        snapshot=snapshot,
        options=CCMOptions(),
        now=datetime(2026, 1, 1, 1, tzinfo=UTC),
    )

    assert [(f.status.value, f.check) for f in found] == [(s, "kube.csr") for s, _ in expected]
    for finding, (_, phrase) in zip(found, expected, strict=True):
        assert phrase in finding.message, finding.message
