"""doctor's topology check: the sources in use, and the hosts or pools a tag source finds
without a usable tag (pure, without any server)."""

from __future__ import annotations

from domain.model import Host, InventorySnapshot, Node, Pool
from domain.options import CCMOptions, RegionSource, TopologyOptions, ZoneSource
from entrypoints.doctor.findings import Finding
from entrypoints.doctor.topology import diagnose_topology
from tests.unit.factories import HOST_1, HOST_2, HOST_3, POOL_A, POOL_B, VM_1, VM_2, vm

SNAPSHOT = InventorySnapshot(
    vms={VM_1: vm(), VM_2: vm(id=VM_2, name_label="worker-2", container=HOST_2)},
    hosts={
        HOST_1: Host(HOST_1, "xcp-1", POOL_A, tags=("k8s.zone=rack-a",)),
        HOST_2: Host(HOST_2, "xcp-2", POOL_A, tags=("ssd",)),
        HOST_3: Host(HOST_3, "xcp-3", POOL_B, tags=("k8s.zone=rack b",)),
    },
    pools={
        POOL_A: Pool(POOL_A, "Pool A", tags=("k8s.region=eu",)),
        POOL_B: Pool(POOL_B, "Pool B"),
    },
)
NODES = [
    Node(name="worker-1", provider_id=f"xenorchestra://{POOL_A}/{VM_1}"),
    Node(name="worker-2", provider_id=f"xenorchestra://{POOL_A}/{VM_2}"),
]


def lines(found: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.status.value, f.subject, f.message) for f in found]


def options(**topology: object) -> CCMOptions:
    return CCMOptions(topology=TopologyOptions(**topology))  # type: ignore[arg-type]


def test_the_default_sources_are_reported_as_the_go_ccms_and_no_tag_is_read() -> None:
    found = diagnose_topology(CCMOptions(), SNAPSHOT, NODES)

    assert lines(found) == [
        (
            "ok",
            "zoneSource, regionSource",
            "zone: the VM's host id; region: the VM's pool id (the Go CCM's)",
        )
    ]
    assert found[0].check == "topology"


def test_with_host_tags_every_host_without_a_usable_tag_is_named() -> None:
    found = diagnose_topology(options(zone_source=ZoneSource.HOST_TAG), SNAPSHOT, NODES)

    assert lines(found) == [
        (
            "ok",
            "zoneSource, regionSource",
            "zone: the host tag k8s.zone=<zone>; region: the VM's pool id",
        ),
        (
            "warn",
            f"host xcp-2 ({HOST_2})",
            "no k8s.zone tag: 1 node whose VM is there keeps the zone label it has, "
            "a node registered there gets none",
        ),
        (
            "warn",
            f"host xcp-3 ({HOST_3})",
            "tag 'k8s.zone=rack b' unusable (not a label value: value 'rack b' must be at most "
            "63 alphanumerics, '-', '_' or '.'): no node's VM is there now; one that moves "
            "there keeps its zone label, a node registered there gets none",
        ),
    ]
    assert "k8s.zone=<zone>" in found[1].fix


def test_with_every_host_tagged_one_line_says_so() -> None:
    hosts = {
        h.id: Host(h.id, h.name_label, h.pool_id, ("k8s.zone=r",)) for h in SNAPSHOT.hosts.values()
    }
    snapshot = InventorySnapshot(vms=SNAPSHOT.vms, hosts=hosts, pools=SNAPSHOT.pools)

    found = diagnose_topology(options(zone_source=ZoneSource.HOST_TAG), snapshot, NODES)

    assert lines(found)[1:] == [("ok", "3 hosts", "all tagged k8s.zone=<zone>")]


def test_with_pool_tags_every_pool_without_one_is_named() -> None:
    found = diagnose_topology(
        options(region_source=RegionSource.POOL_TAG, region_tag="site"), SNAPSHOT, NODES
    )

    assert [(f.status.value, f.subject) for f in found[1:]] == [
        ("warn", f"pool Pool A ({POOL_A})"),
        ("warn", f"pool Pool B ({POOL_B})"),
    ]
    assert "2 nodes whose VMs are there keep the region label" in found[1].message


def test_without_xo_only_the_sources_are_reported() -> None:
    found = diagnose_topology(options(zone_source=ZoneSource.HOST_TAG), None, None)

    assert [f.subject for f in found] == ["zoneSource, regionSource"]
