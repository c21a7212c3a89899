"""Tags to labels and taints, address selection, deletion guards, out-of-service."""

from __future__ import annotations

import ipaddress

import pytest

from adapters.memory import FakeClock, InMemoryEventRecorder, InMemoryInventory, InMemoryNodeStore
from domain.model import AddressType, NodeAddress, PowerState, Readiness, Taint, TaintEffect
from domain.options import (
    AddressFamily,
    AddressOptions,
    CCMOptions,
    DeletionOptions,
    OutOfServiceOptions,
    TagOptions,
)
from domain.policies.addresses import node_addresses
from domain.policies.deletion_guard import DeletionGuard, Verdict
from domain.policies.label_sync import plan_label_sync
from domain.policies.lifecycle import LifecycleAction
from domain.policies.metadata import instance_metadata
from domain.policies.out_of_service import OUT_OF_SERVICE, plan_out_of_service
from domain.policies.tags import MANAGED_LABELS, MANAGED_TAINTS, from_tags
from domain.services import LabelSyncService, LifecycleService, RegistrationService

from .factories import POOL_A, VM_1, host, node, pool, vm

TAGS = TagOptions()


# -- tags -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tag", "label"),
    [
        pytest.param("k8s.label/role=db", ("role", "db"), id="simple"),
        pytest.param(
            "k8s.label/example.com/tier=gold", ("example.com/tier", "gold"), id="prefixed-key"
        ),
        pytest.param("k8s.label/empty=", ("empty", ""), id="empty-value"),
        pytest.param(
            "k8s.label/node-role.kubernetes.io/worker=",
            ("node-role.kubernetes.io/worker", ""),
            id="node-role-allowed",
        ),
    ],
)
def test_label_tags(tag: str, label: tuple[str, str]) -> None:
    result = from_tags([tag], TAGS)
    assert dict(result.labels) == dict([label]) and result.invalid == ()


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        pytest.param("k8s.label/role", "missing '=<value>'", id="no-value"),
        pytest.param("k8s.label/-bad=x", "name", id="bad-name"),
        pytest.param("k8s.label/role=" + "x" * 64, "value", id="value-too-long"),
        pytest.param("k8s.label/role=a b", "value", id="value-with-space"),
        pytest.param("k8s.label/Example.COM/x=y", "prefix", id="uppercase-prefix"),
        pytest.param(
            "k8s.label/kubernetes.io/hostname=evil",
            "belongs to Kubernetes",
            id="kubernetes-namespace",
        ),
        pytest.param(
            "k8s.label/topology.k8s.xenorchestra/pool_id=x", "reserved", id="ccm-namespace"
        ),
        pytest.param("k8s.taint/dedicated=db:NoWay", "effect", id="bad-effect"),
        pytest.param("k8s.taint/dedicated=db", "missing ':<Effect>'", id="no-effect"),
        pytest.param("k8s.taint/bad key:NoSchedule", "name", id="bad-taint-key"),
    ],
)
def test_invalid_tags_are_reported_not_applied(tag: str, why: str) -> None:
    result = from_tags([tag], TAGS)
    assert not result.labels and not result.taints
    assert result.invalid[0][0] == tag and why in result.invalid[0][1]


@pytest.mark.parametrize(
    ("tag", "taint"),
    [
        pytest.param(
            "k8s.taint/dedicated=db:NoSchedule",
            Taint("dedicated", TaintEffect.NO_SCHEDULE, "db"),
            id="with-value",
        ),
        pytest.param(
            "k8s.taint/gpu:NoExecute", Taint("gpu", TaintEffect.NO_EXECUTE, ""), id="without-value"
        ),
    ],
)
def test_taint_tags(tag: str, taint: Taint) -> None:
    assert from_tags([tag], TAGS).taints == (taint,)


def test_unrelated_tags_and_custom_prefixes() -> None:
    opts = TagOptions(label_prefix="kube/", taint_prefix="kube-taint/")
    result = from_tags(["prod", "k8s.label/a=b", "kube/a=c", "kube-taint/t:NoSchedule"], opts)
    assert dict(result.labels) == {"a": "c"} and len(result.taints) == 1


def _md(n, the_vm):  # type: ignore[no-untyped-def]
    return instance_metadata(vm=the_vm, host=host(), pool=pool(), node=n)


def test_tag_labels_are_recorded_and_removed_with_their_tag() -> None:
    n = node(taints=(), provider_id=f"xenorchestra://{POOL_A}/{VM_1}", labels={"team": "ops"})
    first = plan_label_sync(
        node=n, metadata=_md(n, vm(tags=("k8s.label/role=db", "k8s.label/team=x")))
    )
    assert first.change.set_labels["role"] == "db"
    assert "team" not in first.change.set_labels  # somebody else's label: untouched
    assert first.change.set_annotations == {MANAGED_LABELS: "role"}
    n = first.change.apply(n)
    gone = plan_label_sync(node=n, metadata=_md(n, vm(tags=())))
    assert gone.change.remove_labels == {"role"}
    assert gone.change.set_annotations == {MANAGED_LABELS: ""}
    n = gone.change.apply(n)
    assert (
        n.labels == {**{k: v for k, v in n.labels.items()}, "team": "ops"}
        and "role" not in n.labels
    )


def test_tag_taints_only_at_registration_unless_sync_taints() -> None:
    n = node(taints=(), provider_id=f"xenorchestra://{POOL_A}/{VM_1}")
    md = _md(n, vm(tags=("k8s.taint/gpu:NoSchedule",)))
    assert plan_label_sync(node=n, metadata=md).change.add_taints == ()
    synced = plan_label_sync(node=n, metadata=md, sync_taints=True)
    assert synced.change.add_taints == (Taint("gpu", TaintEffect.NO_SCHEDULE),)
    assert synced.change.set_annotations[MANAGED_TAINTS] == "gpu:NoSchedule"
    n = synced.change.apply(n)
    removed = plan_label_sync(node=n, metadata=_md(n, vm(tags=())), sync_taints=True)
    assert removed.change.apply(n).taints == ()


async def test_registration_applies_tags_and_warns_about_invalid_ones() -> None:
    xo, nodes, events = InMemoryInventory(), InMemoryNodeStore(), InMemoryEventRecorder()
    xo.add_pool(pool())
    xo.add_host(host())
    xo.add_vm(
        vm(tags=("k8s.label/role=db", "k8s.taint/dedicated=db:NoSchedule", "k8s.label/bad key=x"))
    )
    nodes.create(node())
    svc = RegistrationService(inventory=xo, nodes=nodes, events=events, clock=FakeClock())
    await svc.sync(name="worker-1")
    n = nodes.nodes["worker-1"]
    assert n.labels["role"] == "db"
    assert Taint("dedicated", TaintEffect.NO_SCHEDULE, "db") in n.taints
    warnings = [e for e in events.events if e.reason == "InvalidVMTag"]
    assert len(warnings) == 1 and "k8s.label/bad key=x" in warnings[0].message


# -- address selection -------------------------------------------------------------
def nets(*cidrs: str) -> tuple:  # type: ignore[type-arg]
    return tuple(ipaddress.ip_network(c) for c in cidrs)


GUEST = {
    "0/ipv4/0": "192.168.1.10",
    "1/ipv4/0": "10.0.0.5",
    "0/ipv6/0": "fe80::1",
    "0/ipv6/1": "2001:db8::5",
    "2/ipv4/0": "172.17.0.1",
}


@pytest.mark.parametrize(
    ("options", "provided", "expected"),
    [
        pytest.param(None, (), [("ExternalIP", "10.1.6.166")], id="no-options-equals-reference"),
        pytest.param(
            AddressOptions(
                internal_cidrs=nets("10.0.0.0/8"), external_cidrs=nets("192.168.0.0/16")
            ),
            (),
            [("InternalIP", "10.0.0.5"), ("ExternalIP", "192.168.1.10")],
            id="classified-by-cidr-internal-without-node-ip",
        ),
        pytest.param(
            AddressOptions(exclude_cidrs=nets("172.17.0.0/16")),
            (),
            [("InternalIP", "192.168.1.10"), ("InternalIP", "10.0.0.5")],
            id="exclusions-only-everything-else-internal",
        ),
        pytest.param(
            AddressOptions(internal_cidrs=nets("10.0.0.0/8", "192.168.0.0/16")),
            (),
            [("InternalIP", "10.0.0.5"), ("InternalIP", "192.168.1.10")],
            id="ordered-by-cidr-preference",
        ),
        pytest.param(
            AddressOptions(internal_cidrs=nets("2001:db8::/32"), family=AddressFamily.IPV6),
            (),
            [("InternalIP", "2001:db8::5")],
            id="ipv6-only-link-local-dropped",
        ),
        pytest.param(
            AddressOptions(
                internal_cidrs=nets("10.0.0.0/8", "2001:db8::/32"), family=AddressFamily.DUALSTACK
            ),
            (),
            [("InternalIP", "10.0.0.5"), ("InternalIP", "2001:db8::5")],
            id="dualstack",
        ),
        pytest.param(
            AddressOptions(internal_cidrs=nets("10.0.0.0/8")),
            ("192.168.1.10",),
            [("InternalIP", "192.168.1.10")],
            id="provided-ip-wins-over-other-internal",
        ),
    ],
)
def test_address_selection(
    options: AddressOptions | None, provided: tuple[str, ...], expected: list[tuple[str, str]]
) -> None:
    got = node_addresses(
        vm=vm(addresses=GUEST), node_name="n", provided_ips=provided, options=options
    )
    assert got[-1] == NodeAddress(AddressType.HOSTNAME, "n")
    assert [(a.type.value, a.address) for a in got[:-1]] == expected


# -- deletion guard -------------------------------------------------------------------
def test_deletion_needs_two_sightings_confirm_delay_apart() -> None:
    guard = DeletionGuard(DeletionOptions(confirm_delay=30))
    assert guard.check(uid="n", now=0, total_nodes=10) is Verdict.WAIT_CONFIRMATION
    assert guard.check(uid="n", now=29, total_nodes=10) is Verdict.WAIT_CONFIRMATION
    assert guard.confirm_in("n", 29) == pytest.approx(1)
    assert guard.check(uid="n", now=30, total_nodes=10) is Verdict.ALLOW


def test_vm_seen_again_resets_the_confirmation() -> None:
    guard = DeletionGuard(DeletionOptions(confirm_delay=30))
    guard.check(uid="n", now=0, total_nodes=10)
    guard.seen_present("n")
    assert guard.check(uid="n", now=40, total_nodes=10) is Verdict.WAIT_CONFIRMATION


@pytest.mark.parametrize(
    ("nodes", "limit"),
    [
        pytest.param(10, 5, id="minimum-5"),
        pytest.param(100, 10, id="10-percent"),
        pytest.param(1000, 100, id="1000-nodes"),
    ],
)
def test_deletion_rate_limit(nodes: int, limit: int) -> None:
    guard = DeletionGuard(DeletionOptions(confirm_delay=0))
    assert guard.limit(nodes) == limit
    for i in range(limit):
        assert guard.check(uid=f"n{i}", now=i, total_nodes=nodes) is Verdict.ALLOW
        guard.deleted(f"n{i}", i)
    assert guard.check(uid="one-more", now=limit, total_nodes=nodes) is Verdict.RATE_LIMITED
    assert (
        guard.check(uid="later", now=10_000, total_nodes=nodes) is Verdict.RATE_LIMITED
    )  # latched


def test_a_granted_deletion_holds_its_slot_until_released() -> None:
    guard = DeletionGuard(DeletionOptions(confirm_delay=0, rate_minimum=1, rate_percent=0))
    assert guard.check(uid="a", now=0, total_nodes=2) is Verdict.ALLOW
    # a second path asks while "a" is still being deleted: the slot is taken
    assert guard.check(uid="b", now=0, total_nodes=2) is Verdict.RATE_LIMITED


def test_a_failed_deletion_gives_its_slot_back() -> None:
    guard = DeletionGuard(DeletionOptions(confirm_delay=0, rate_minimum=2, rate_percent=0))
    assert guard.check(uid="a", now=0, total_nodes=2) is Verdict.ALLOW
    guard.release("a")
    assert guard.deletions_in_window == 0
    assert guard.check(uid="b", now=1, total_nodes=2) is Verdict.ALLOW


async def test_concurrent_checks_of_one_node_delete_it_once() -> None:
    import asyncio

    lc = Lifecycle(CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.add("n", _uuid(1))
    lc.xo.delete_vm(_uuid(1))
    results = await asyncio.gather(lc.svc.check_by_name(name="n"), lc.svc.run_pass())
    assert results[0].action is LifecycleAction.DELETE_NODE
    assert lc.events.reasons() == ["DeletingNode"]


def test_deletions_outside_the_window_do_not_count() -> None:
    guard = DeletionGuard(
        DeletionOptions(confirm_delay=0, rate_minimum=1, rate_percent=0, window=600)
    )
    guard.deleted("a", 0)
    assert guard.check(uid="b", now=601, total_nodes=1) is Verdict.ALLOW


class Lifecycle:
    def __init__(self, options: CCMOptions) -> None:
        self.xo, self.nodes, self.events, self.clock = (
            InMemoryInventory(),
            InMemoryNodeStore(),
            InMemoryEventRecorder(),
            FakeClock(),
        )
        self.xo.add_pool(pool())
        self.svc = LifecycleService(
            inventory=self.xo,
            nodes=self.nodes,
            events=self.events,
            clock=self.clock,
            options=options,
        )

    def add(self, name: str, vm_id: str, *, running: bool = True) -> None:
        self.xo.add_vm(
            vm(id=vm_id, power_state=PowerState.RUNNING if running else PowerState.HALTED)
        )
        self.nodes.create(
            node(
                name,
                taints=(),
                provider_id=f"xenorchestra://{POOL_A}/{vm_id}",
                readiness=Readiness.FALSE,
            )
        )


def _uuid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-000000000000"


async def test_lifecycle_confirms_before_deleting() -> None:
    lc = Lifecycle(CCMOptions(deletion=DeletionOptions(confirm_delay=30)))
    lc.add("n", _uuid(1))
    lc.xo.delete_vm(_uuid(1))
    first = await lc.svc.check_by_name(name="n")
    assert first.action is LifecycleAction.WAIT_CONFIRMATION and first.recheck_after == 30
    lc.clock._t = 30
    assert (await lc.svc.check_by_name(name="n")).action is LifecycleAction.DELETE_NODE
    assert "n" not in lc.nodes.nodes


async def test_lifecycle_rate_breaker_stops_deleting_and_warns() -> None:
    lc = Lifecycle(CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    for i in range(8):
        lc.add(f"n{i}", _uuid(i))
        lc.xo.delete_vm(_uuid(i))
    result = await lc.svc.run_pass()
    assert result.actions[LifecycleAction.DELETE_NODE] == 5
    assert result.actions[LifecycleAction.DELETION_RATE_LIMITED] == 3
    assert len(lc.nodes.nodes) == 3
    assert lc.events.reasons().count("NodeDeletionRateLimited") == 3


async def test_dry_run_deletions_only_records() -> None:
    lc = Lifecycle(CCMOptions(deletion=DeletionOptions(confirm_delay=0, dry_run=True)))
    lc.add("n", _uuid(1))
    lc.xo.delete_vm(_uuid(1))
    assert (await lc.svc.check_by_name(name="n")).action is LifecycleAction.DRY_RUN_DELETE
    assert "n" in lc.nodes.nodes and lc.events.reasons() == ["DeletingNodeDryRun"]


# -- out of service ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("enabled", "down_for", "ready", "has", "change"),
    [
        pytest.param(True, 299.0, False, False, "none", id="within-grace-nothing"),
        pytest.param(True, 300.0, False, False, "add", id="after-grace-added"),
        pytest.param(False, 9999.0, False, False, "none", id="disabled-never-added"),
        pytest.param(True, None, True, True, "remove", id="ready-again-removed"),
        pytest.param(True, None, False, True, "remove", id="vm-running-again-removed"),
        pytest.param(True, 9999.0, False, True, "none", id="already-there"),
    ],
)
def test_out_of_service_policy(
    enabled: bool, down_for: float | None, ready: bool, has: bool, change: str
) -> None:
    n = node(
        taints=(OUT_OF_SERVICE,) if has else (),
        readiness=Readiness.TRUE if ready else Readiness.FALSE,
    )
    got = plan_out_of_service(
        node=n,
        shut_down_for=down_for,
        options=OutOfServiceOptions(enabled=enabled, grace_period=300),
    )
    kind = "add" if got.add_taints else "remove" if got.remove_taints else "none"
    assert kind == change


def test_operators_own_out_of_service_taint_is_kept() -> None:
    theirs = Taint(OUT_OF_SERVICE.key, TaintEffect.NO_EXECUTE, "maintenance")
    n = node(taints=(theirs,), readiness=Readiness.TRUE)
    assert plan_out_of_service(
        node=n, shut_down_for=None, options=OutOfServiceOptions(enabled=True)
    ).empty


async def test_out_of_service_after_grace_then_removed_when_ready() -> None:
    lc = Lifecycle(CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=60)))
    lc.add("n", VM_1, running=False)
    await lc.svc.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints
    lc.clock._t = 61
    await lc.svc.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints
    lc.nodes.set_readiness("n", Readiness.TRUE)
    await lc.svc.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints


async def test_label_sync_service_follows_tag_changes() -> None:
    xo, nodes, events = InMemoryInventory(), InMemoryNodeStore(), InMemoryEventRecorder()
    xo.add_pool(pool())
    xo.add_host(host())
    xo.add_vm(vm(tags=("k8s.label/role=db",)))
    nodes.create(node())
    await RegistrationService(inventory=xo, nodes=nodes, events=events, clock=FakeClock()).sync(
        name="worker-1"
    )
    sync = LabelSyncService(inventory=xo, nodes=nodes, events=events)
    xo.update_vm(VM_1, tags=("k8s.label/role=cache",))
    await sync.run_pass()
    assert nodes.nodes["worker-1"].labels["role"] == "cache"
    xo.update_vm(VM_1, tags=())
    await sync.run_pass()
    assert "role" not in nodes.nodes["worker-1"].labels
