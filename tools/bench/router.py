"""The change router's cost per XO event, at 1,000 and 5,000 Nodes.

In this process: a ``ChangeRouter`` over an ``InMemoryNodeStore`` holding N
initialized Nodes (the Kubernetes store answers ``get`` from the same kind of
in-process dict cache), fed ``update`` events for random VMs of those Nodes,
triggers that do nothing. What is timed is the router's own work per event:
the index lookup and the check against the store's copy. Before the index it
scanned every Node per event (12 ms per event at 5,000 nodes).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from adapters.memory import InMemoryInventory, InMemoryNodeStore
from application.change_router import ChangeRouter
from domain.model import VM, ChangeKind, Node, PowerState, VMChange

POOL = str(uuid.UUID(int=1))
EVENTS = 20_000
WARMUP = 1_000


class _Ignored:
    """Pokes that do nothing: only the router's own work is timed."""

    async def vm_changed(self, name: str) -> None:
        return None

    vm_removed = vm_appeared = vm_changed

    def resynced(self) -> None:
        return None


def _vm(vm_id: str) -> VM:
    return VM(
        id=vm_id,
        name_label=vm_id,
        power_state=PowerState.RUNNING,
        pool_id=POOL,
        container=POOL,
        cpus=2,
        memory_bytes=4 << 30,
    )


async def router_cost(nodes: int, *, events: int = EVENTS, seed: int = 13) -> dict[str, Any]:
    store = InMemoryNodeStore()
    vm_ids = [str(uuid.UUID(int=(i + 1) << 64)) for i in range(nodes)]
    for i, vm_id in enumerate(vm_ids):
        store.create(Node(name=f"node-{i:05d}", provider_id=f"xenorchestra://{POOL}/{vm_id}"))
    router = ChangeRouter(inventory=InMemoryInventory(), nodes=store, pokes=_Ignored())
    await router.index_all()
    rng = random.Random(seed)
    changes = [VMChange(ChangeKind.UPDATED, _vm(rng.choice(vm_ids))) for _ in range(events)]
    for change in changes[:WARMUP]:
        await router.handle(change)
    samples = []
    started = time.perf_counter()
    for change in changes:
        t0 = time.perf_counter()
        await router.handle(change)
        samples.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    samples.sort()
    return {
        "nodes": nodes,
        "events": events,
        "mean_ms": round(total / events * 1000, 5),
        "p50_ms": round(samples[len(samples) // 2] * 1000, 5),
        "p99_ms": round(samples[int(len(samples) * 0.99)] * 1000, 5),
    }


async def router_costs(sizes: tuple[int, ...] = (1000, 5000)) -> list[dict[str, Any]]:
    return [await router_cost(n) for n in sizes]
