"""XO tags to labels and taints, and the choice of a node's addresses."""

from __future__ import annotations

import ipaddress

import pytest

from domain import labels as L
from domain.model import AddressType, EventType, NodeAddress, Taint, TaintEffect
from domain.options import (
    AddressFamily,
    AddressOptions,
    TagOptions,
)
from domain.policies.addresses import node_addresses
from domain.policies.label_sync import plan_label_sync
from domain.policies.metadata import instance_metadata
from domain.policies.tags import MANAGED_LABELS, MANAGED_TAINTS, from_tags
from tests.world import ONE_HOST, World

from .factories import POOL_A, VM_1, VM_2, host, node, pool, vm

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
    world = World(ONE_HOST)
    xo, nodes, events = world.xo, world.nodes, world.events
    xo.add_vm(
        vm(tags=("k8s.label/role=db", "k8s.taint/dedicated=db:NoSchedule", "k8s.label/bad key=x"))
    )
    nodes.create(node())
    svc = world.registration
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


async def test_label_sync_service_follows_tag_changes() -> None:
    world = World(ONE_HOST)
    xo, nodes = world.xo, world.nodes
    xo.add_vm(vm(tags=("k8s.label/role=db",)))
    nodes.create(node())
    await world.registration.sync(name="worker-1")
    xo.update_vm(VM_1, tags=("k8s.label/role=cache",))
    await world.label_pass()
    assert nodes.nodes["worker-1"].labels["role"] == "cache"
    xo.update_vm(VM_1, tags=())
    await world.label_pass()
    assert "role" not in nodes.nodes["worker-1"].labels


# -- the instance type from a tag ----------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "options", "chosen", "refused"),
    [
        pytest.param(["k8s.instance-type=gpu-large"], TAGS, "gpu-large", [], id="valid"),
        pytest.param(["k8s.instance-type=a.b_c-1"], TAGS, "a.b_c-1", [], id="dots-underscores"),
        pytest.param(["prod", "k8s.label/a=b"], TAGS, "", [], id="no-tag-go-format"),
        pytest.param(["k8s.instance-type="], TAGS, "", ["empty value"], id="empty"),
        pytest.param(["k8s.instance-type=gpu large"], TAGS, "", ["value"], id="space"),
        pytest.param(["k8s.instance-type=" + "x" * 64], TAGS, "", ["value"], id="too-long"),
        pytest.param(["k8s.instance-type=-gpu"], TAGS, "", ["value"], id="edge-not-alnum"),
        pytest.param(
            ["k8s.instance-type=gpu", "k8s.instance-type=cpu"],
            TAGS,
            "",
            ["several instance-type tags (cpu, gpu)"] * 2,
            id="two-values-none-used",
        ),
        pytest.param(
            ["kube/type=small", "k8s.instance-type=gpu"],
            TagOptions(instance_type_prefix="kube/type="),
            "small",
            [],
            id="custom-prefix",
        ),
        pytest.param(
            ["k8s.instance-type=gpu"],
            TagOptions(instance_type_prefix=""),
            "",
            [],
            id="prefix-empty-turns-it-off",
        ),
        pytest.param(
            ["k8s.instance-type=gpu"],
            TagOptions(label_prefix="k8s."),
            "gpu",
            [],
            id="wins-over-a-label-prefix-that-covers-it",
        ),
    ],
)
def test_instance_type_tags(
    tags: list[str], options: TagOptions, chosen: str, refused: list[str]
) -> None:
    result = from_tags(tags, options)
    assert result.instance_type == chosen
    assert len(result.invalid) == len(refused)
    pairs = zip(result.invalid, refused, strict=True)
    assert [why[: len(start)] for (_, why), start in pairs] == refused


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        pytest.param(("k8s.instance-type=gpu-large",), "gpu-large", id="tag"),
        pytest.param(("k8s.instance-type=gpu large",), "2vCPU-4GB", id="invalid-go-format"),
        pytest.param((), "2vCPU-4GB", id="none-go-format"),
    ],
)
def test_metadata_instance_type_from_a_tag_else_the_go_format(
    tags: tuple[str, ...], expected: str
) -> None:
    n = node()
    assert _md(n, vm(tags=tags)).instance_type == expected


async def test_registration_uses_the_instance_type_tag_and_names_an_invalid_one() -> None:
    world = World(ONE_HOST)
    xo, nodes, events = world.xo, world.nodes, world.events
    xo.add_vm(vm(tags=("k8s.instance-type=gpu-large",)))
    xo.add_vm(vm(id=VM_2, name_label="worker-2", tags=("k8s.instance-type=gpu/large",)))
    nodes.create(node())
    nodes.create(node("worker-2", system_uuid=VM_2))
    svc = world.registration
    await svc.sync(name="worker-1")
    await svc.sync(name="worker-2")

    first, second = nodes.nodes["worker-1"].labels, nodes.nodes["worker-2"].labels
    assert first[L.INSTANCE_TYPE] == first[L.INSTANCE_TYPE_BETA] == "gpu-large"
    assert second[L.INSTANCE_TYPE] == second[L.INSTANCE_TYPE_BETA] == "2vCPU-4GB"
    (warning,) = [e for e in events.events if e.reason == "InvalidVMTag"]
    assert warning.node == "worker-2" and warning.type is EventType.WARNING
    assert "'k8s.instance-type=gpu/large'" in warning.message


async def test_label_sync_follows_the_instance_type_tag_and_falls_back_when_invalid() -> None:
    world = World(ONE_HOST)
    xo, nodes, events = world.xo, world.nodes, world.events
    xo.add_vm(vm())
    nodes.create(node())
    await world.registration.sync(name="worker-1")

    def instance_type() -> tuple[str, str]:
        got = nodes.nodes["worker-1"].labels
        return got[L.INSTANCE_TYPE], got[L.INSTANCE_TYPE_BETA]

    assert instance_type() == ("2vCPU-4GB", "2vCPU-4GB")
    xo.update_vm(VM_1, tags=("k8s.instance-type=gpu-large",))
    await world.label_pass()
    assert instance_type() == ("gpu-large", "gpu-large")
    assert events.reasons("worker-1")[-1] == "NodeInstanceTypeHasChanged"

    xo.update_vm(VM_1, tags=("k8s.instance-type=gpu large!",))
    await world.label_pass()
    assert instance_type() == ("2vCPU-4GB", "2vCPU-4GB")
    assert events.reasons("worker-1")[-2:] == ["NodeInstanceTypeHasChanged", "InvalidVMTag"]
    assert "'k8s.instance-type=gpu large!'" in events.events[-1].message

    await world.label_pass()  # nothing moved: nothing said again
    assert events.reasons("worker-1")[-1] == "InvalidVMTag" and len(events.events) == 4
