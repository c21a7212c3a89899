"""What the controllers cost XO, counted by the fake server per endpoint.

A pass over every node reads one snapshot (three list requests) whatever the
node count; initializing a node whose host and pool are cached costs one.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory import InMemoryNodeStore
from adapters.xenorchestra import XOInventory
from domain import labels
from domain.model import Node, Taint, TaintEffect
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.world import World as CCM
from tests.xo.support import World

NODES = 1000
SNAPSHOT = {"GET /vms": 1, "GET /hosts": 1, "GET /pools": 1}
UNINITIALIZED = Taint(key=labels.UNINITIALIZED_TAINT_KEY, effect=TaintEffect.NO_SCHEDULE)


def _initialized_nodes(vms: list[dict[str, Any]]) -> InMemoryNodeStore:
    store = InMemoryNodeStore()
    for vm in vms:
        store.create(
            Node(
                name=vm["name_label"],
                provider_id=f"xenorchestra://{vm['$pool']}/{vm['id']}",
                system_uuid=vm["id"],
            )
        )
    return store


@pytest.fixture
def fleet(xo: FakeXOServer, world: World) -> list[dict[str, Any]]:
    vms = xo.state.populate(count=NODES // 2, pool_id=world.pool_a)
    return vms + xo.state.populate(count=NODES - len(vms), pool_id=world.pool_b)


async def test_a_label_sync_pass_over_1000_nodes_costs_one_snapshot(
    xo: FakeXOServer, inventory: XOInventory, fleet: list[dict[str, Any]]
) -> None:
    nodes = _initialized_nodes(fleet)
    service = CCM(inventory=inventory, nodes=nodes)
    xo.requests.reset()

    first = await service.label_pass()
    first_counts = xo.requests.snapshot()
    xo.requests.reset()
    second = await service.label_pass()

    assert first_counts == SNAPSHOT
    assert xo.requests.snapshot() == SNAPSHOT
    assert first.failed == 0
    assert first.updated == NODES  # every node got its XO labels once...
    assert second.updated == 0  # ...and a no-op pass writes nothing
    node = nodes.nodes[fleet[0]["name_label"]]
    assert node.labels[labels.POOL_ID] == fleet[0]["$pool"]


async def test_an_address_sync_pass_over_1000_nodes_costs_one_snapshot(
    xo: FakeXOServer, inventory: XOInventory, fleet: list[dict[str, Any]]
) -> None:
    nodes = _initialized_nodes(fleet)
    service = CCM(inventory=inventory, nodes=nodes).registration
    xo.requests.reset()

    result = await service.sync_addresses()

    assert xo.requests.snapshot() == SNAPSHOT
    assert (result.patched, result.failed) == (NODES, 0)


@pytest.mark.parametrize(
    ("warm", "expected"),
    [
        pytest.param(True, {"GET /vms/{id}": 1}, id="host-and-pool-cached"),
        pytest.param(
            False,
            {"GET /vms/{id}": 1, "GET /hosts/{id}": 1, "GET /pools/{id}": 1},
            id="cold-cache",
        ),
    ],
)
async def test_initializing_a_node_costs_one_request_when_host_and_pool_are_cached(
    xo: FakeXOServer,
    world: World,
    inventory: XOInventory,
    warm: bool,
    expected: dict[str, int],
) -> None:
    vm = xo.state.add_vm(name_label="node-1", pool_id=world.pool_a, host_id=world.host_a2)
    nodes = InMemoryNodeStore()
    nodes.create(Node(name="node-1", system_uuid=vm["id"].upper(), taints=(UNINITIALIZED,)))
    service = CCM(inventory=inventory, nodes=nodes).registration
    if warm:
        await inventory.snapshot()
    xo.requests.reset()

    await service.sync(name="node-1")

    assert xo.requests.snapshot() == expected
    node = nodes.nodes["node-1"]
    assert not node.has_taint(labels.UNINITIALIZED_TAINT_KEY)
    assert node.provider_id == f"xenorchestra://{world.pool_a}/{vm['id']}"
    assert node.labels[labels.HOST_NAME_LABEL] == "host-a2"


async def test_concurrent_misses_of_one_host_and_pool_cost_one_request_each(
    xo: FakeXOServer, inventory: XOInventory, world: World
) -> None:
    import asyncio

    host_id = world.host_a1
    xo.requests.reset()
    await asyncio.gather(
        *(inventory.get_host(host_id=host_id) for _ in range(10)),
        *(inventory.get_pool(pool_id=world.pool_a) for _ in range(10)),
    )
    assert xo.requests.snapshot() == {"GET /hosts/{id}": 1, "GET /pools/{id}": 1}


@pytest.mark.parametrize("how", ["registration", "label-sync"])
async def test_a_halted_vm_s_node_costs_no_host_request(
    xo: FakeXOServer, world: World, inventory: XOInventory, how: str
) -> None:
    """A halted VM's ``$container`` is its pool: no host to ask XO for (asked, it
    answered 404 at every sync of such a node)."""
    vm = xo.state.add_vm(name_label="node-1", pool_id=world.pool_a, power_state="Halted")
    nodes = InMemoryNodeStore()
    ours = f"xenorchestra://{world.pool_a}/{vm['id']}"
    taints = (UNINITIALIZED,) if how == "registration" else ()
    nodes.create(Node(name="node-1", system_uuid=vm["id"], provider_id=ours, taints=taints))
    ccm = CCM(inventory=inventory, nodes=nodes)
    await inventory.snapshot()
    xo.requests.reset()

    if how == "registration":
        await ccm.registration.sync(name="node-1")
    else:
        await ccm.label_sync.sync_node(name="node-1")

    assert xo.requests.snapshot() == {"GET /vms/{id}": 1}
