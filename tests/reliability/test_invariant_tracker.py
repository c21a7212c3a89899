"""The fault tests are only as good as their invariant checks: these break the
invariants on purpose (no CCM running) and require the tracker to notice."""

from __future__ import annotations

import pytest

from domain import labels
from tests.integration.kube import label_node

from .world import World, set_node_ready

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


async def test_deleting_a_node_whose_vm_exists_is_a_violation(world: World) -> None:
    name = world.member("a-ready-2").name
    await world.kube.request("DELETE", f"/api/v1/nodes/{name}")
    await world.watch.wait_for(lambda: bool(world.tracker.violations), within=10)
    assert any("deleted while its VM" in v for v in world.tracker.violations)


async def test_deleting_a_ready_node_is_a_violation_even_when_its_vm_is_gone(world: World) -> None:
    name = world.member("a-ready-2").name
    world.delete_vm("a-ready-2")
    await world.kube.request("DELETE", f"/api/v1/nodes/{name}")
    await world.watch.wait_for(lambda: bool(world.tracker.violations), within=10)
    assert any("deleted while Ready" in v for v in world.tracker.violations)


async def test_deleting_a_not_ready_node_whose_vm_is_gone_is_allowed(world: World) -> None:
    member = world.member("a-down-0")
    world.delete_vm("a-down-0")
    await world.kube.request("DELETE", f"/api/v1/nodes/{member.name}")
    await world.watch.wait_for(lambda: member.name not in world.watch.nodes, within=10)
    assert world.tracker.violations == []
    assert world.tracker.checks["deletion justified"] == 1


async def test_a_lost_label_a_pool_as_zone_and_split_twins_are_violations(world: World) -> None:
    name = world.member("b-ready-0").name
    pool = world.pools["b"]
    await label_node(world.kube, name, **{"team.example/owner": "blue"})
    await label_node(world.kube, name, **{labels.ZONE: pool, labels.ZONE_BETA: pool})
    await label_node(world.kube, name, **{labels.ZONE_BETA: world.hosts["b"][0]})
    await label_node(world.kube, name, **{"team.example/owner": None})
    await world.watch.wait_for(
        lambda: any(" lost " in v for v in world.tracker.violations), within=10
    )
    found = "\n".join(world.tracker.violations)
    assert "is not a host VM" in found
    assert f"{labels.ZONE}={pool!r} but {labels.ZONE_BETA}=" in found
    assert "team.example/owner lost" in found


async def test_a_world_without_a_ccm_never_converges(world: World) -> None:
    await set_node_ready(world.kube, world.member("a-ready-3").name, True)
    assert any("not initialized" in item for item in world.unconverged())
    with pytest.raises(AssertionError, match="work still pending"):
        await world.wait_converged(within=1.0)
