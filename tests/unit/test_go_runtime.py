"""--controller-start-interval and --concurrent-node-status-updates."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.memory import InMemoryNodeStore
from application.manager import staggered
from domain.model import Node, NodeAddress


class Named:
    def __init__(self, name: str, started: list[tuple[str, float]]) -> None:
        self.name = name
        self._started = started

    async def run(self) -> None:
        self._started.append((self.name, asyncio.get_running_loop().time()))


async def test_controllers_start_one_interval_times_one_plus_jitter_apart() -> None:
    started: list[tuple[str, float]] = []
    runnables = [Named(n, started) for n in ("a", "b", "c")]
    wrapped = staggered(runnables, 0.05, jitter=lambda: 0.5)
    assert [getattr(r, "delay", 0.0) for r in wrapped] == pytest.approx([0.0, 0.075, 0.15])
    t0 = asyncio.get_running_loop().time()
    await asyncio.gather(*(r.run() for r in wrapped))
    offsets = [t - t0 for _, t in started]
    assert [n for n, _ in started] == ["a", "b", "c"]
    assert offsets[1] >= 0.07 and offsets[2] >= 0.14


def test_no_interval_starts_everything_at_once() -> None:
    runnables = [Named("a", []), Named("b", [])]
    assert staggered(runnables, 0.0) == runnables


class SlowStore(InMemoryNodeStore):
    """Counts how many address patches are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most = 0

    async def set_addresses(self, *, node: Node, addresses: Sequence[NodeAddress]) -> Node:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.02)
        self.in_flight -= 1
        return await super().set_addresses(node=node, addresses=addresses)


@pytest.mark.parametrize("workers", [1, 3])
async def test_address_sync_patches_with_the_status_update_workers(workers: int) -> None:
    from entrypoints.flags.settings import Settings
    from entrypoints.in_memory import in_memory_container

    from .factories import node, vm

    store = SlowStore()
    container = in_memory_container(
        Settings(leader_elect=False, concurrent_node_status_updates=workers)
    )
    container.nodes.override(store)
    inventory = container.inventory()
    for i in range(6):
        machine = vm(id=f"00000000-0000-0000-0000-00000000000{i}", main_ip_address=f"10.0.0.{i}")
        inventory.add_vm(machine)
        store.create(
            node(
                f"w{i}",
                provider_id=f"xenorchestra://{machine.pool_id}/{machine.id}",
                taints=(),
            )
        )
    result = await container.registration().sync_addresses(
        workers=container.settings().status_update_workers
    )
    assert result.patched == 6
    assert store.most == workers
