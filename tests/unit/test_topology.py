"""Zone and region sources: the tag reading, the topology table, and what label sync and
initialization write with each source (pure policies, no I/O)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain import labels as L
from domain.model import Host, Node, Pool, PowerState
from domain.options import CCMOptions, RegionSource, TopologyOptions, ZoneSource
from domain.policies.initialization import plan_initialization
from domain.policies.label_sync import LabelSyncPlan, plan_label_sync
from domain.policies.metadata import instance_metadata
from domain.policies.topology import describe, tag_value, topology

from .factories import HOST_1, HOST_2, HOST_3, POOL_A, POOL_B, VM_1, node, vm

PROVIDER_ID = f"xenorchestra://{POOL_A}/{VM_1}"
HOST_TAG = TopologyOptions(zone_source=ZoneSource.HOST_TAG)
POOL_TAG = TopologyOptions(region_source=RegionSource.POOL_TAG)
RACKS = {HOST_1: "rack-a", HOST_2: "rack-a", HOST_3: "rack-b"}


def tagged_host(host_id: str = HOST_1, *tags: str, pool_id: str = POOL_A) -> Host:
    return Host(id=host_id, name_label=f"xcp-{host_id[:4]}", pool_id=pool_id, tags=tags)


def rack_host(host_id: str, pool_id: str = POOL_A) -> Host:
    return tagged_host(host_id, f"k8s.zone={RACKS[host_id]}", pool_id=pool_id)


def tagged_pool(pool_id: str = POOL_A, *tags: str) -> Pool:
    return Pool(id=pool_id, name_label=f"Pool {pool_id[:4]}", tags=tags)


# -- reading a tag -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "value", "found", "problem"),
    [
        pytest.param((), "", False, "", id="no-tags"),
        pytest.param(("ssd", "k8s.zonex=a"), "", False, "", id="other-keys-only"),
        pytest.param(("ssd", "k8s.zone=rack-a"), "rack-a", True, "", id="present"),
        pytest.param(("k8s.zone = rack-a ",), "rack-a", True, "", id="spaces-around"),
        pytest.param(("k8s.zone=a", "k8s.zone=a"), "a", True, "", id="same-value-twice"),
        pytest.param(("k8s.zone=a", "k8s.zone=b"), "", True, "2 tags name", id="two-values"),
        pytest.param(("k8s.zone",), "", True, "missing '=<value>'", id="bare-key"),
        pytest.param(("k8s.zone=",), "", True, "empty", id="empty-value"),
        pytest.param(("k8s.zone=rack a",), "", True, "not a label value", id="space-inside"),
        pytest.param(("k8s.zone=" + "r" * 64,), "", True, "not a label value", id="too-long"),
        pytest.param(("k8s.zone=-rack",), "", True, "not a label value", id="leading-dash"),
    ],
)
def test_a_tag_value_is_read_or_refused(
    tags: tuple[str, ...], value: str, found: bool, problem: str
) -> None:
    read = tag_value(tags, "k8s.zone")

    assert (read.value, read.found) == (value, found)
    assert problem in read.problem if problem else read.problem == ""


# -- zone and region by source ---------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "the_vm", "the_host", "zone", "problems"),
    [
        pytest.param(TopologyOptions(), vm(), rack_host(HOST_1), HOST_1, 0, id="host"),
        pytest.param(
            TopologyOptions(),
            vm(power_state=PowerState.HALTED, container=POOL_A),
            None,
            "",
            0,
            id="host-halted",
        ),
        pytest.param(HOST_TAG, vm(), rack_host(HOST_1), "rack-a", 0, id="host-tag"),
        pytest.param(HOST_TAG, vm(), tagged_host(HOST_1, "ssd"), "", 0, id="host-tag-missing"),
        pytest.param(
            HOST_TAG, vm(), tagged_host(HOST_1, "k8s.zone=a b"), "", 1, id="host-tag-invalid"
        ),
        pytest.param(
            TopologyOptions(zone_source=ZoneSource.HOST_TAG, zone_tag="site"),
            vm(),
            tagged_host(HOST_1, "k8s.zone=a", "site=paris"),
            "paris",
            0,
            id="host-tag-own-key",
        ),
        pytest.param(HOST_TAG, vm(), rack_host(HOST_3), "", 0, id="host-record-of-another-host"),
        pytest.param(HOST_TAG, vm(), None, "", 0, id="host-unknown"),
        pytest.param(
            HOST_TAG,
            vm(power_state=PowerState.HALTED, container=POOL_A),
            rack_host(HOST_1),
            "",
            0,
            id="host-tag-halted",
        ),
        pytest.param(
            TopologyOptions(zone_source=ZoneSource.POOL), vm(), None, POOL_A, 0, id="pool"
        ),
        pytest.param(
            TopologyOptions(zone_source=ZoneSource.POOL),
            vm(power_state=PowerState.HALTED, container=POOL_A),
            None,
            POOL_A,
            0,
            id="pool-halted-still-in-its-pool",
        ),
        pytest.param(
            TopologyOptions(zone_source=ZoneSource.NONE), vm(), rack_host(HOST_1), "", 0, id="none"
        ),
    ],
)
def test_the_zone_comes_from_its_source(
    options: TopologyOptions, the_vm: object, the_host: Host | None, zone: str, problems: int
) -> None:
    where = topology(vm=the_vm, host=the_host, pool=None, options=options)  # type: ignore[arg-type]

    assert where.zone == zone
    assert len(where.problems) == problems


@pytest.mark.parametrize(
    ("options", "the_pool", "region", "problems"),
    [
        pytest.param(TopologyOptions(), tagged_pool(POOL_A, "k8s.region=eu"), POOL_A, 0, id="pool"),
        pytest.param(POOL_TAG, tagged_pool(POOL_A, "k8s.region=eu"), "eu", 0, id="pool-tag"),
        pytest.param(POOL_TAG, tagged_pool(POOL_A), "", 0, id="pool-tag-missing"),
        pytest.param(POOL_TAG, tagged_pool(POOL_A, "k8s.region=é"), "", 1, id="pool-tag-invalid"),
        pytest.param(POOL_TAG, tagged_pool(POOL_B, "k8s.region=eu"), "", 0, id="another-pool"),
        pytest.param(POOL_TAG, None, "", 0, id="pool-unknown"),
        pytest.param(
            TopologyOptions(region_source=RegionSource.NONE), tagged_pool(), "", 0, id="none"
        ),
    ],
)
def test_the_region_comes_from_its_source(
    options: TopologyOptions, the_pool: Pool | None, region: str, problems: int
) -> None:
    where = topology(vm=vm(), host=None, pool=the_pool, options=options)

    assert where.region == region
    assert len(where.problems) == problems


def test_an_unusable_tag_is_named_with_its_owner_in_one_line() -> None:
    bad = tagged_host(HOST_1, "k8s.zone=rack a")

    md = instance_metadata(
        vm=vm(), host=bad, pool=None, node=node(), options=CCMOptions(topology=HOST_TAG)
    )

    (message,) = md.topology_problems
    assert message == (
        f"host xcp-b61a ({HOST_1}) tag 'k8s.zone=rack a' ignored: not a label value: value "
        "'rack a' must be at most 63 alphanumerics, '-', '_' or '.'; "
        "the zone label is left as it is"
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param(TopologyOptions(), "zone: the VM's host id; region: the VM's pool id"),
        pytest.param(
            TopologyOptions(
                zone_source=ZoneSource.HOST_TAG,
                zone_tag="rack",
                region_source=RegionSource.NONE,
            ),
            "zone: the host tag rack=<zone>; region: not set",
        ),
        pytest.param(
            TopologyOptions(zone_source=ZoneSource.POOL, region_source=RegionSource.POOL_TAG),
            "zone: the VM's pool id; region: the pool tag k8s.region=<region>",
        ),
    ],
)
def test_the_sources_are_described_in_words(options: TopologyOptions, words: str) -> None:
    assert describe(options) == words


# -- initialization --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "the_host", "the_pool", "zone", "region"),
    [
        pytest.param(HOST_TAG, rack_host(HOST_1), tagged_pool(), "rack-a", POOL_A, id="host-tag"),
        pytest.param(HOST_TAG, tagged_host(HOST_1), tagged_pool(), None, POOL_A, id="untagged"),
        pytest.param(
            TopologyOptions(zone_source=ZoneSource.NONE, region_source=RegionSource.NONE),
            rack_host(HOST_1),
            tagged_pool(),
            None,
            None,
            id="none",
        ),
        pytest.param(
            POOL_TAG, rack_host(HOST_1), tagged_pool(POOL_A, "k8s.region=eu"), HOST_1, "eu", id="pt"
        ),
    ],
)
def test_initialization_writes_the_zone_and_region_its_sources_know(
    options: TopologyOptions,
    the_host: Host,
    the_pool: Pool,
    zone: str | None,
    region: str | None,
) -> None:
    n = node()
    md = instance_metadata(
        vm=vm(), host=the_host, pool=the_pool, node=n, options=CCMOptions(topology=options)
    )

    written = plan_initialization(node=n, metadata=md).change.set_labels

    assert (written.get(L.ZONE), written.get(L.ZONE_BETA)) == (zone, zone)
    assert (written.get(L.REGION), written.get(L.REGION_BETA)) == (region, region)
    # whatever the sources, the XO labels name the host and the pool
    assert (written[L.HOST_ID], written[L.POOL_ID]) == (HOST_1, POOL_A)


# -- label sync ------------------------------------------------------------------------
def registered(zone: str | None = "rack-a", region: str | None = POOL_A, **extra: str) -> Node:
    """A node initialized on HOST_1 of POOL_A, with this zone and region."""
    base = {
        L.HOST_ID: HOST_1,
        L.POOL_ID: POOL_A,
        L.INSTANCE_TYPE: "2vCPU-4GB",
        L.VM_NAME_LABEL: "worker-1",
        L.HOST_NAME_LABEL: "xcp-b61a",
        L.POOL_NAME_LABEL: "Pool-b756",
    }
    if zone is not None:
        base[L.ZONE] = base[L.ZONE_BETA] = zone
    if region is not None:
        base[L.REGION] = base[L.REGION_BETA] = region
    base.update(extra)
    return node(taints=(), provider_id=PROVIDER_ID, labels=base)


def sync(
    n: Node,
    *,
    on: str = HOST_1,
    the_host: Host | None = None,
    the_pool: Pool | None = None,
    options: TopologyOptions = HOST_TAG,
    pool_id: str = POOL_A,
) -> LabelSyncPlan:
    the_vm = vm(container=on, pool_id=pool_id)
    md = instance_metadata(
        vm=the_vm,
        host=the_host if the_host is not None else rack_host(on, pool_id),
        pool=the_pool if the_pool is not None else tagged_pool(pool_id),
        node=n,
        options=CCMOptions(topology=options),
    )
    return plan_label_sync(node=n, metadata=md, topology=options)


def test_a_migration_inside_the_zone_group_changes_no_zone_and_warns_nothing() -> None:
    plan = sync(registered(), on=HOST_2)

    written = plan.change.set_labels
    assert L.ZONE not in written and L.ZONE_BETA not in written
    assert plan.events == ()
    # the XO labels still name the host, and the first host is kept once
    assert written[L.HOST_ID] == HOST_2
    assert written[L.ORIGINAL_HOST_ID] == HOST_1


def test_a_migration_to_another_group_moves_the_zone_with_a_warning() -> None:
    plan = sync(registered(), on=HOST_3)

    written = plan.change.set_labels
    assert (written[L.ZONE], written[L.ZONE_BETA]) == ("rack-b", "rack-b")
    assert (written[L.HOST_ID], written[L.ORIGINAL_HOST_ID]) == (HOST_3, HOST_1)
    ((kind, reason, message),) = [(e.type.value, e.reason, e.message) for e in plan.events]
    assert (kind, reason) == ("Warning", "NodeZoneChanged")
    assert message == ("Node worker-1 zone changed (node VM host changed): old=rack-a, new=rack-b")


def test_a_host_tag_change_moves_the_zone_without_a_host_move() -> None:
    plan = sync(registered(), the_host=tagged_host(HOST_1, "k8s.zone=rack-c"))

    written = plan.change.set_labels
    assert written == {L.ZONE: "rack-c", L.ZONE_BETA: "rack-c"}
    assert [e.message for e in plan.events] == [
        "Node worker-1 zone changed (host tag k8s.zone changed): old=rack-a, new=rack-c"
    ]


@pytest.mark.parametrize(
    "the_host",
    [
        pytest.param(tagged_host(HOST_2), id="tag-missing"),
        pytest.param(tagged_host(HOST_2, "k8s.zone=rack a"), id="tag-invalid"),
        pytest.param(Host(id=HOST_2, name_label="?", pool_id=POOL_A), id="no-tags"),
    ],
)
def test_a_host_without_a_usable_tag_leaves_the_zone_as_it_is(the_host: Host) -> None:
    plan = sync(registered(), on=HOST_2, the_host=the_host)

    assert L.ZONE not in plan.change.set_labels
    assert L.ZONE not in plan.change.remove_labels
    assert plan.change.set_labels[L.HOST_ID] == HOST_2
    assert plan.events == ()


def test_a_zone_appears_once_the_host_is_tagged_without_a_warning() -> None:
    plan = sync(registered(zone=None))

    assert plan.change.set_labels == {L.ZONE: "rack-a", L.ZONE_BETA: "rack-a"}
    assert plan.events == ()


def test_the_first_host_is_written_once() -> None:
    plan = sync(registered(**{L.ORIGINAL_HOST_ID: "first-host"}), on=HOST_3)

    assert L.ORIGINAL_HOST_ID not in plan.change.set_labels


def test_switching_a_cluster_from_host_zones_to_tags_warns_once_and_records_no_move() -> None:
    plan = sync(registered(zone=HOST_1))

    assert plan.change.set_labels == {L.ZONE: "rack-a", L.ZONE_BETA: "rack-a"}
    assert [e.reason for e in plan.events] == ["NodeZoneChanged"]


def test_with_the_pool_as_zone_a_migration_inside_the_pool_moves_nothing() -> None:
    options = TopologyOptions(zone_source=ZoneSource.POOL)
    inside = sync(registered(zone=POOL_A), on=HOST_2, options=options)
    across = sync(registered(zone=POOL_A), on=HOST_3, options=options, pool_id=POOL_B)

    assert L.ZONE not in inside.change.set_labels and inside.events == ()
    assert across.change.set_labels[L.ZONE] == POOL_B
    assert across.change.set_labels[L.ORIGINAL_HOST_ID] == HOST_1
    assert across.change.set_labels[L.ORIGINAL_POOL_ID] == POOL_A
    assert [e.message for e in across.events] == [
        f"Node worker-1 zone changed (node VM pool changed): old={POOL_A}, new={POOL_B}",
        f"Node worker-1 region changed (node VM pool changed): old={POOL_A}, new={POOL_B}",
    ]


def test_without_a_zone_source_no_zone_is_written_nor_removed() -> None:
    options = TopologyOptions(zone_source=ZoneSource.NONE)

    kept = sync(registered(zone=HOST_1), on=HOST_3, options=options)
    bare = sync(registered(zone=None), options=options)

    assert L.ZONE not in kept.change.set_labels | dict.fromkeys(kept.change.remove_labels)
    assert kept.events == ()
    assert kept.change.set_labels[L.ORIGINAL_HOST_ID] == HOST_1
    assert bare.change.empty


def test_a_region_from_a_pool_tag_follows_the_tag_and_appears_once_tagged() -> None:
    eu = tagged_pool(POOL_A, "k8s.region=eu")
    us = tagged_pool(POOL_A, "k8s.region=us")

    appears = sync(registered(zone=HOST_1, region=None), options=POOL_TAG, the_pool=eu)
    changed = sync(registered(zone=HOST_1, region="eu"), options=POOL_TAG, the_pool=us)
    untagged = sync(registered(zone=HOST_1, region="eu"), options=POOL_TAG, the_pool=tagged_pool())

    assert appears.change.set_labels == {L.REGION: "eu", L.REGION_BETA: "eu"}
    assert appears.events == ()
    assert changed.change.set_labels == {L.REGION: "us", L.REGION_BETA: "us"}
    assert [e.message for e in changed.events] == [
        "Node worker-1 region changed (pool tag k8s.region changed): old=eu, new=us"
    ]
    assert untagged.change.empty


def test_a_move_to_a_pool_of_the_same_region_keeps_the_region_and_records_the_first_pool() -> None:
    eu_b = tagged_pool(POOL_B, "k8s.region=eu")
    n = registered(zone=HOST_1, region="eu")

    plan = sync(n, on=HOST_3, pool_id=POOL_B, the_pool=eu_b, options=POOL_TAG)

    written = plan.change.set_labels
    assert L.REGION not in written
    assert (written[L.POOL_ID], written[L.ORIGINAL_POOL_ID]) == (POOL_B, POOL_A)
    assert [e.reason for e in plan.events] == ["NodeZoneChanged"]


def test_the_reference_sources_still_record_the_old_zone_as_the_first_host() -> None:
    """The Go CCM's rule, kept: with zone = host the zone label says where the VM was."""
    n = replace(registered(zone=HOST_1), labels={L.ZONE: HOST_1, L.REGION: POOL_A})

    plan = sync(n, on=HOST_2, options=TopologyOptions())

    assert plan.change.set_labels[L.ORIGINAL_HOST_ID] == HOST_1
    assert [e.message for e in plan.events] == [
        f"Node worker-1 zone changed (node VM host changed): old={HOST_1}, new={HOST_2}"
    ]
