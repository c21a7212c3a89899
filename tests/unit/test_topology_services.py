"""Zone sources through the services on the in-memory adapters: registration and label
sync with hosts grouped by tag."""

from __future__ import annotations

import pytest

from domain import labels as L
from domain.model import Host
from domain.options import CCMOptions, TopologyOptions, ZoneSource
from tests.world import TWO_POOLS, Given, World

from .factories import HOST_1, HOST_2, HOST_3, POOL_A, POOL_B, VM_1, vm

OPTIONS = CCMOptions(topology=TopologyOptions(zone_source=ZoneSource.HOST_TAG))


RACKS = Given(
    pools=TWO_POOLS.pools,
    hosts=tuple(
        Host(id=host_id, name_label=name, pool_id=pool_id, tags=(f"k8s.zone={rack}",))
        for host_id, name, pool_id, rack in (
            (HOST_1, "xcp-1", POOL_A, "rack-a"),
            (HOST_2, "xcp-2", POOL_A, "rack-a"),
            (HOST_3, "xcp-3", POOL_B, "rack-b"),
        )
    ),
)


class Racks(World):
    """HOST_1 and HOST_2 in rack-a (pool A), HOST_3 in rack-b (pool B)."""

    def __init__(self) -> None:
        super().__init__(RACKS, options=OPTIONS)

    async def join(self) -> None:  # type: ignore[override]
        self.xo.add_vm(vm())
        await super().join()

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.nodes.nodes["worker-1"].labels)


@pytest.fixture
def racks() -> Racks:
    return Racks()


async def test_a_node_registers_in_its_hosts_zone_and_keeps_it_inside_the_group(
    racks: Racks,
) -> None:
    await racks.join()
    assert racks.labels[L.ZONE] == racks.labels[L.ZONE_BETA] == "rack-a"

    racks.xo.migrate_vm(VM_1, host_id=HOST_2)
    await racks.label_pass()

    assert racks.labels[L.ZONE] == "rack-a"
    assert (racks.labels[L.HOST_ID], racks.labels[L.ORIGINAL_HOST_ID]) == (HOST_2, HOST_1)
    assert racks.events.reasons() == ["Synced"]

    racks.xo.migrate_vm(VM_1, host_id=HOST_3)
    assert await racks.label_sync.sync_node(name="worker-1")

    assert (racks.labels[L.ZONE], racks.labels[L.REGION]) == ("rack-b", POOL_B)
    assert racks.labels[L.ORIGINAL_HOST_ID] == HOST_1
    assert racks.events.reasons() == ["Synced", "NodeZoneChanged", "NodeRegionChanged"]


async def test_a_retagged_host_moves_its_nodes_zone_at_the_next_pass(racks: Racks) -> None:
    await racks.join()
    await racks.label_pass()  # settled: the next pass compares only

    racks.xo.tag_host(HOST_1, tags=["k8s.zone=rack-c"])
    assert (await racks.label_pass()).updated == 1

    assert racks.labels[L.ZONE] == "rack-c"
    assert L.ORIGINAL_HOST_ID not in racks.labels
    (changed,) = [e for e in racks.events.events if e.reason == "NodeZoneChanged"]
    assert changed.message == (
        "Node worker-1 zone changed (host tag k8s.zone changed): old=rack-a, new=rack-c"
    )


async def test_an_untagged_host_leaves_the_zone_and_an_invalid_tag_is_a_warning(
    racks: Racks,
) -> None:
    racks.xo.tag_host(HOST_1, tags=["k8s.zone=rack a"])
    await racks.join()

    assert L.ZONE not in racks.labels  # nothing usable: no zone at all
    assert not racks.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)
    assert racks.events.reasons() == ["InvalidTopologyTag", "Synced"]
    warning = racks.events.events[0]
    assert warning.type.value == "Warning"
    assert "'k8s.zone=rack a'" in warning.message and "xcp-1" in warning.message

    racks.xo.tag_host(HOST_1, tags=["k8s.zone=rack-a"])
    await racks.label_pass()
    assert racks.labels[L.ZONE] == "rack-a"

    racks.xo.tag_host(HOST_1, tags=[])
    await racks.label_pass()
    assert racks.labels[L.ZONE] == "rack-a"  # a lost tag never removes the zone
    assert racks.events.reasons().count("NodeZoneChanged") == 0
