"""Metadata, the initialization plan, the lifecycle table and the label-sync diff."""

from __future__ import annotations

import pytest

from domain import labels as L
from domain.model import AddressType, NodeAddress, PowerState, Readiness, Taint, TaintEffect
from domain.policies.initialization import plan_beta_to_ga, plan_initialization
from domain.policies.label_sync import plan_label_sync
from domain.policies.lifecycle import LifecycleAction, VMState, decide
from domain.policies.metadata import instance_metadata
from domain.policies.topology import resident_host_id

from .factories import GIB, HOST_1, HOST_2, POOL_A, POOL_B, VM_1, host, node, pool, vm

PROVIDER_ID = f"xenorchestra://{POOL_A}/{VM_1}"


# -- metadata ----------------------------------------------------------------
def test_metadata_of_a_running_vm() -> None:
    md = instance_metadata(vm=vm(), host=host(), pool=pool(), node=node())
    assert md.provider_id == PROVIDER_ID
    assert md.instance_type == "2vCPU-4GB"
    assert (md.region, md.zone) == (POOL_A, HOST_1)
    assert md.additional_labels == {
        L.VM_NAME_LABEL: "worker-1",
        L.POOL_ID: POOL_A,
        L.POOL_NAME_LABEL: "Pool-A",
        L.HOST_ID: HOST_1,
        L.HOST_NAME_LABEL: "xcp-host-1",
    }
    assert md.addresses == (
        NodeAddress(AddressType.EXTERNAL_IP, "10.1.6.166"),
        NodeAddress(AddressType.HOSTNAME, "worker-1"),
    )
    assert md.shutdown is False


def test_metadata_keeps_the_existing_providerid_verbatim() -> None:
    existing = f"xenorchestra:///{VM_1}"
    md = instance_metadata(vm=vm(), host=host(), pool=pool(), node=node(provider_id=existing))
    assert md.provider_id == existing


@pytest.mark.parametrize(
    ("the_host", "the_pool", "host_name", "pool_name"),
    [
        pytest.param(None, None, "unknown", "unknown", id="both-unknown"),
        pytest.param(host(HOST_2), pool(), "unknown", "Pool-A", id="host-record-of-another-host"),
    ],
)
def test_metadata_unknown_names(the_host, the_pool, host_name: str, pool_name: str) -> None:  # type: ignore[no-untyped-def]
    md = instance_metadata(vm=vm(), host=the_host, pool=the_pool, node=node())
    assert md.additional_labels[L.HOST_NAME_LABEL] == host_name
    assert md.additional_labels[L.POOL_NAME_LABEL] == pool_name


@pytest.mark.parametrize(
    ("state", "container", "zone"),
    [
        pytest.param(PowerState.RUNNING, HOST_1, HOST_1, id="running-on-host"),
        pytest.param(PowerState.PAUSED, HOST_1, HOST_1, id="paused-still-resident"),
        pytest.param(PowerState.HALTED, POOL_A, "", id="halted-container-is-pool"),
        pytest.param(PowerState.HALTED, HOST_1, "", id="halted-on-local-sr-host-is-not-a-zone"),
        pytest.param(PowerState.SUSPENDED, POOL_A, "", id="suspended"),
        pytest.param(PowerState.RUNNING, POOL_A, "", id="running-but-container-is-pool"),
    ],
)
def test_resident_host_never_a_pool(state: PowerState, container: str, zone: str) -> None:
    the_vm = vm(power_state=state, container=container)
    assert resident_host_id(the_vm) == zone
    md = instance_metadata(vm=the_vm, host=host(), pool=pool(), node=node())
    assert md.zone == zone
    assert (L.HOST_ID in md.additional_labels) is bool(zone)
    assert POOL_A not in {md.zone, md.additional_labels.get(L.HOST_ID)}


def test_metadata_provided_node_ip_becomes_internal_ip() -> None:
    n = node(annotations={L.PROVIDED_NODE_IP: "10.1.6.166, 192.168.1.5"})
    md = instance_metadata(vm=vm(), host=host(), pool=pool(), node=n)
    assert [a for a in md.addresses if a.type is AddressType.INTERNAL_IP] == [
        NodeAddress(AddressType.INTERNAL_IP, "10.1.6.166"),
        NodeAddress(AddressType.INTERNAL_IP, "192.168.1.5"),
    ]


# -- initialization plan -------------------------------------------------------
def _plan(n=None, the_vm=None):  # type: ignore[no-untyped-def]
    n = n or node()
    md = instance_metadata(vm=the_vm or vm(), host=host(), pool=pool(), node=n)
    return plan_initialization(node=n, metadata=md)


def test_init_plan_sets_providerid_labels_and_removes_taint() -> None:
    plan = _plan()
    assert plan.wait_reason == ""
    assert plan.change.provider_id == PROVIDER_ID
    assert plan.change.remove_taint_keys == {L.UNINITIALIZED_TAINT_KEY}
    assert plan.change.set_labels == {
        L.INSTANCE_TYPE: "2vCPU-4GB",
        L.INSTANCE_TYPE_BETA: "2vCPU-4GB",
        L.ZONE: HOST_1,
        L.ZONE_BETA: HOST_1,
        L.REGION: POOL_A,
        L.REGION_BETA: POOL_A,
        L.VM_NAME_LABEL: "worker-1",
        L.POOL_ID: POOL_A,
        L.POOL_NAME_LABEL: "Pool-A",
        L.HOST_ID: HOST_1,
        L.HOST_NAME_LABEL: "xcp-host-1",
    }


def test_init_plan_never_rewrites_an_existing_providerid() -> None:
    plan = _plan(node(provider_id=f"xenorchestra:///{VM_1}"))
    assert plan.change.provider_id is None


@pytest.mark.parametrize(
    ("annotation", "addresses", "waits"),
    [
        pytest.param("10.1.6.166", {}, False, id="provided-ip-is-main-ip"),
        pytest.param(
            "192.168.1.5", {"1/ipv4/0": "192.168.1.5"}, False, id="provided-ip-on-second-nic"
        ),
        pytest.param("10.9.9.9", {}, True, id="provided-ip-mismatch-requeues"),
        pytest.param("10.1.6.166,10.9.9.9", {}, True, id="one-of-two-missing-requeues"),
    ],
)
def test_init_plan_provided_node_ip(
    annotation: str, addresses: dict[str, str], waits: bool
) -> None:
    n = node(annotations={L.PROVIDED_NODE_IP: annotation})
    plan = _plan(n, vm(addresses=addresses))
    assert bool(plan.wait_reason) is waits
    assert plan.change.empty is waits


def test_init_plan_accepts_provided_ip_when_vm_reports_no_ip_yet() -> None:
    n = node(annotations={L.PROVIDED_NODE_IP: "10.9.9.9"})
    plan = _plan(n, vm(main_ip_address=None))
    assert plan.wait_reason == ""
    assert NodeAddress(AddressType.INTERNAL_IP, "10.9.9.9") in plan.addresses


def test_init_plan_never_overwrites_existing_additional_labels() -> None:
    plan = _plan(node(labels={L.VM_NAME_LABEL: "set-by-operator"}))
    assert L.VM_NAME_LABEL not in plan.change.set_labels


def test_init_plan_drops_additional_keys_in_kubernetes_namespaces() -> None:
    md = instance_metadata(vm=vm(), host=host(), pool=pool(), node=node())
    md = type(md)(
        **{
            **{f: getattr(md, f) for f in md.__slots__},
            "additional_labels": {
                "node.kubernetes.io/evil": "x",
                "foo.k8s.io/evil": "x",
                "k8s.io/evil": "x",
                "example.com/fine": "y",
            },
        }
    )
    plan = plan_initialization(node=node(), metadata=md)
    assert "example.com/fine" in plan.change.set_labels
    assert not any(k.endswith("/evil") for k in plan.change.set_labels)


def test_init_plan_halted_vm_writes_no_zone() -> None:
    plan = _plan(the_vm=vm(power_state=PowerState.HALTED, container=POOL_A))
    assert L.ZONE not in plan.change.set_labels
    assert L.HOST_ID not in plan.change.set_labels


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({L.ZONE_BETA: "z"}, {L.ZONE: "z"}, id="ga-missing"),
        pytest.param({L.ZONE_BETA: "z", L.ZONE: "old"}, {L.ZONE: "z"}, id="ga-differs"),
        pytest.param({L.ZONE_BETA: "z", L.ZONE: "z"}, {}, id="already-equal"),
        pytest.param({L.ZONE: "z"}, {}, id="no-beta-nothing-to-copy"),
        pytest.param(
            {L.REGION_BETA: "r", L.INSTANCE_TYPE_BETA: "t"},
            {L.REGION: "r", L.INSTANCE_TYPE: "t"},
            id="region-and-instance-type",
        ),
    ],
)
def test_beta_labels_copied_to_ga_for_initialized_nodes(
    labels: dict[str, str], expected: dict[str, str]
) -> None:
    assert plan_beta_to_ga(node(taints=(), labels=labels)).set_labels == expected


# -- lifecycle table -----------------------------------------------------------
SHUTDOWN = L.SHUTDOWN_TAINT


@pytest.mark.parametrize(
    ("readiness", "taints", "state", "action"),
    [
        pytest.param(
            Readiness.TRUE, (), None, LifecycleAction.NOTHING, id="ready-untainted-nothing"
        ),
        pytest.param(
            Readiness.TRUE,
            (SHUTDOWN,),
            None,
            LifecycleAction.REMOVE_SHUTDOWN_TAINT,
            id="ready-shutdown-taint-removed",
        ),
        pytest.param(
            Readiness.FALSE,
            (),
            VMState.RUNNING,
            LifecycleAction.NOTHING,
            id="notready-vm-running-nothing",
        ),
        pytest.param(
            Readiness.FALSE,
            (),
            VMState.DELETED,
            LifecycleAction.DELETE_NODE,
            id="notready-vm-gone-deleted",
        ),
        pytest.param(
            Readiness.UNKNOWN,
            (),
            VMState.DELETED,
            LifecycleAction.DELETE_NODE,
            id="unknown-vm-gone-deleted",
        ),
        pytest.param(
            Readiness.MISSING,
            (),
            VMState.DELETED,
            LifecycleAction.DELETE_NODE,
            id="no-condition-vm-gone-deleted",
        ),
        pytest.param(
            Readiness.FALSE,
            (),
            VMState.LOOKUP_FAILED,
            LifecycleAction.KEEP_UNCERTAIN,
            id="notready-lookup-error-kept",
        ),
        pytest.param(
            Readiness.FALSE,
            (),
            VMState.POOL_UNKNOWN,
            LifecycleAction.KEEP_UNCERTAIN,
            id="notready-pool-unknown-kept",
        ),
        pytest.param(
            Readiness.FALSE,
            (),
            VMState.SHUT_DOWN,
            LifecycleAction.ADD_SHUTDOWN_TAINT,
            id="notready-shut-down-tainted",
        ),
        pytest.param(
            Readiness.FALSE,
            (SHUTDOWN,),
            VMState.SHUT_DOWN,
            LifecycleAction.NOTHING,
            id="notready-shut-down-already-tainted",
        ),
        pytest.param(
            Readiness.FALSE,
            (),
            VMState.NOT_OURS,
            LifecycleAction.NOTHING,
            id="notready-foreign-exists",
        ),
    ],
)
def test_lifecycle_decision(
    readiness: Readiness, taints: tuple[Taint, ...], state: VMState | None, action: LifecycleAction
) -> None:
    assert decide(node=node(readiness=readiness, taints=taints), vm_state=state) is action


# -- label sync ----------------------------------------------------------------
def _initialized(**labels: str):  # type: ignore[no-untyped-def]
    base = {
        L.ZONE: HOST_1,
        L.ZONE_BETA: HOST_1,
        L.REGION: POOL_A,
        L.REGION_BETA: POOL_A,
        L.INSTANCE_TYPE: "2vCPU-4GB",
        L.INSTANCE_TYPE_BETA: "2vCPU-4GB",
        L.VM_NAME_LABEL: "worker-1",
        L.POOL_ID: POOL_A,
        L.POOL_NAME_LABEL: "Pool-A",
        L.HOST_ID: HOST_1,
        L.HOST_NAME_LABEL: "xcp-host-1",
    }
    base.update(labels)
    return node(taints=(), provider_id=PROVIDER_ID, labels=base)


def _sync(n, the_vm, the_host=None, the_pool=None):  # type: ignore[no-untyped-def]
    md = instance_metadata(vm=the_vm, host=the_host or host(), pool=the_pool or pool(), node=n)
    return plan_label_sync(node=n, metadata=md)


def test_label_sync_nothing_changed_writes_nothing() -> None:
    plan = _sync(_initialized(), vm())
    assert plan.change.empty
    assert plan.events == ()


def test_label_sync_live_migration() -> None:
    plan = _sync(_initialized(), vm(container=HOST_2), host(HOST_2, "xcp-host-2"))
    assert plan.change.set_labels == {
        L.ZONE: HOST_2,
        L.ZONE_BETA: HOST_2,
        L.ORIGINAL_HOST_ID: HOST_1,
        L.HOST_ID: HOST_2,
        L.HOST_NAME_LABEL: "xcp-host-2",
    }
    assert [e.reason for e in plan.events] == ["NodeZoneChanged"]


def test_label_sync_original_host_written_once() -> None:
    n = _initialized(**{L.ORIGINAL_HOST_ID: "first-host"})
    plan = _sync(n, vm(container=HOST_2), host(HOST_2, "xcp-host-2"))
    assert L.ORIGINAL_HOST_ID not in plan.change.set_labels


def test_label_sync_pool_move() -> None:
    plan = _sync(
        _initialized(),
        vm(pool_id=POOL_B, container=HOST_2),
        host(HOST_2, "h2", POOL_B),
        pool(POOL_B, "Pool B"),
    )
    s = plan.change.set_labels
    assert (s[L.REGION], s[L.REGION_BETA], s[L.ORIGINAL_POOL_ID]) == (POOL_B, POOL_B, POOL_A)
    assert s[L.POOL_ID] == POOL_B
    assert s[L.POOL_NAME_LABEL] == "Pool-B"
    assert [e.reason for e in plan.events] == ["NodeZoneChanged", "NodeRegionChanged"]


def test_label_sync_original_pool_written_once() -> None:
    n = _initialized(**{L.ORIGINAL_POOL_ID: "first-pool"})
    plan = _sync(
        n, vm(pool_id=POOL_B, container=HOST_2), host(HOST_2, "h2", POOL_B), pool(POOL_B, "Pool B")
    )
    assert L.ORIGINAL_POOL_ID not in plan.change.set_labels


def test_label_sync_resize() -> None:
    plan = _sync(_initialized(), vm(cpus=4, memory_bytes=8 * GIB))
    assert plan.change.set_labels == {
        L.INSTANCE_TYPE: "4vCPU-8GB",
        L.INSTANCE_TYPE_BETA: "4vCPU-8GB",
    }
    assert [(e.type.value, e.reason) for e in plan.events] == [
        ("Normal", "NodeInstanceTypeHasChanged")
    ]


def test_label_sync_rename() -> None:
    plan = _sync(_initialized(), vm(name_label="renamed VM"))
    assert plan.change.set_labels == {L.VM_NAME_LABEL: "renamed-VM"}
    assert plan.events == ()


@pytest.mark.parametrize(
    "state", [PowerState.HALTED, PowerState.SUSPENDED], ids=["halted", "suspended"]
)
def test_label_sync_halted_vm_never_writes_its_pool_into_zone_or_host(state: PowerState) -> None:
    plan = _sync(_initialized(), vm(power_state=state, container=POOL_A))
    written = plan.change.set_labels
    assert L.ZONE not in written
    assert L.HOST_ID not in written
    assert L.ZONE_BETA not in written
    assert POOL_A not in {written.get(L.ZONE), written.get(L.HOST_ID)}


def test_label_sync_skips_nodes_still_tainted() -> None:
    n = node(provider_id=PROVIDER_ID, labels={L.ZONE: HOST_2})
    assert _sync(n, vm()).change.empty


def test_label_sync_adds_missing_xo_labels_and_zone_but_not_region_or_type() -> None:
    n = node(taints=(), provider_id=PROVIDER_ID, labels={})
    plan = _sync(n, vm())
    written = plan.change.set_labels
    assert L.POOL_ID in written and L.INSTANCE_TYPE not in written and L.REGION not in written
    assert (written[L.ZONE], written[L.ZONE_BETA]) == (HOST_1, HOST_1)


def test_vm_halted_at_registration_gets_its_zone_once_running_without_original_or_event() -> None:
    n = _initialized()
    n = type(n)(
        **{
            **{f: getattr(n, f) for f in n.__slots__},
            "labels": {
                k: v
                for k, v in n.labels.items()
                if k not in (L.ZONE, L.ZONE_BETA, L.HOST_ID, L.HOST_NAME_LABEL)
            },
        }
    )
    plan = _sync(n, vm())
    assert plan.change.set_labels[L.ZONE] == HOST_1
    assert L.ORIGINAL_HOST_ID not in plan.change.set_labels
    assert plan.events == ()


def test_taint_effect_values_match_kubernetes() -> None:
    assert {e.value for e in TaintEffect} == {"NoSchedule", "PreferNoSchedule", "NoExecute"}
