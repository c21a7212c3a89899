"""Labels never go back in time, under churn, through the real adapters.

One VM live-migrates back and forth between two hosts while three other VMs
change twice a second; the CCM (its console script) runs against the real
kube-apiserver and a fake XO over HTTP, at ``--node-status-update-frequency``
1 s (the periodic passes race the change events every second) and at its
default. A watch on the moving VM's Node records every value its zone label
takes: a *revert* is a change to anything but the latest migration's host.
There must be none, and each move must reach the Node within 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.kubernetes import KubeClient
from domain import labels as L

from .conftest import StartCCM
from .e2e_support import (
    GIB,
    FakeXOProcess,
    Nodes,
    World,
)
from .kube import get_node
from .waiting import until

pytestmark = pytest.mark.integration

MIGRATIONS = 10
MIGRATION_GAP = 3.0
CHURN_PERIOD = 0.5
VISIBLE_WITHIN = 1.0


@dataclass
class ZoneHistory:
    """Every zone value the watched Node took, with when it was seen."""

    values: list[tuple[float, str]] = field(default_factory=list)

    def record(self, zone: str) -> None:
        if not self.values or self.values[-1][1] != zone:
            self.values.append((time.monotonic(), zone))


async def follow_zone(kube: KubeClient, name: str, history: ZoneHistory) -> None:
    """Watch the Node and record each zone label value it takes (until cancelled)."""
    node = await get_node(kube, name)
    history.record(node["metadata"]["labels"].get(L.ZONE, ""))
    version = node["metadata"]["resourceVersion"]
    while True:
        stream = await kube.watch(
            "/api/v1/nodes",
            query=[
                ("watch", "1"),
                ("fieldSelector", f"metadata.name={name}"),
                ("resourceVersion", version),
                ("allowWatchBookmarks", "false"),
            ],
            request_timeout=(5.0, 60.0),
        )
        try:
            while (event := await stream.next_event()) is not None:
                obj: dict[str, Any] = event.get("object") or {}
                meta = obj.get("metadata") or {}
                version = meta.get("resourceVersion", version)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    history.record((meta.get("labels") or {}).get(L.ZONE, ""))
        finally:
            await stream.aclose()


async def churn(world: World, vm_ids: list[str]) -> None:
    """Each VM changes every ``CHURN_PERIOD`` seconds: renames and resizes in turn."""
    turn = 0
    while True:
        turn += 1
        for i, vm_id in enumerate(vm_ids):
            if turn % 2:
                await world.control.rename_vm(vm_id, name_label=f"churn-{i}-{turn}")
            else:
                await world.control.resize_vm(vm_id, cpus=2 + turn % 3, memory=(2 + turn % 2) * GIB)
        await asyncio.sleep(CHURN_PERIOD)


def reverts(history: ZoneHistory, moves: list[tuple[float, str]]) -> list[str]:
    """Each zone value that goes back: between a move and the next one, anything but
    the move's host once the Node showed it, or anything but the host before it
    until then."""
    found = []
    for k, (at, target) in enumerate(moves):
        ends = moves[k + 1][0] if k + 1 < len(moves) else float("inf")
        before = moves[k - 1][1] if k else None
        reached = False
        for seen_at, zone in history.values:
            if not at <= seen_at < ends:
                continue
            if zone == target:
                reached = True
            elif reached or zone != before:
                found.append(f"{zone} at +{seen_at - moves[0][0]:.2f}s (move {k + 1}: {target})")
    return found


def lags(history: ZoneHistory, moves: list[tuple[float, str]]) -> list[float]:
    """Seconds from each move to the first time the Node showed its host."""
    out = []
    for at, host in moves:
        shown = next((t for t, zone in history.values if t >= at and zone == host), None)
        out.append(float("inf") if shown is None else shown - at)
    return out


@pytest.mark.parametrize(
    "frequency",
    [pytest.param("1s", id="status-every-1s"), pytest.param("", id="status-default")],
)
async def test_migrations_under_churn_never_revert_the_zone(
    frequency: str,
    kube: KubeClient,
    start_ccm: StartCCM,
) -> None:
    fake = FakeXOProcess(ping_interval=5.0).start()
    nodes = Nodes(kube)
    tasks: list[asyncio.Task[None]] = []
    try:
        async with fake.control() as control:
            world = await World.create(control, hosts=2)
            mover = await world.vm(host=0)
            others = [await world.vm(host=i % 2) for i in range(3)]
            flags = [f"--node-status-update-frequency={frequency}"] if frequency else []
            await start_ccm(fake.url, flags=flags, subscribed=True)
            names = [await nodes.create("churn", system_uuid=vm["id"]) for vm in [mover, *others]]

            async def initialized() -> bool:
                for name in names:
                    node = await get_node(kube, name)
                    if any(
                        t["key"] == L.UNINITIALIZED_TAINT_KEY
                        for t in node["spec"].get("taints") or []
                    ):
                        return False
                return True

            await until(initialized, within=30)
            history = ZoneHistory()
            tasks.append(asyncio.create_task(follow_zone(kube, names[0], history)))
            tasks.append(asyncio.create_task(churn(world, [vm["id"] for vm in others])))
            await asyncio.sleep(1.0)
            moves: list[tuple[float, str]] = []
            for i in range(MIGRATIONS):
                target = world.host_id((i + 1) % 2)
                moves.append((time.monotonic(), target))
                await control.migrate_vm(mover["id"], host_id=target)
                await asyncio.sleep(MIGRATION_GAP)
            await asyncio.sleep(1.0)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await nodes.cleanup()
        fake.stop()
    found = reverts(history, moves)
    slow = [
        f"move {i + 1}: {lag:.2f}s"
        for i, lag in enumerate(lags(history, moves))
        if lag > VISIBLE_WITHIN
    ]
    print(f"zone values: {len(history.values)}, reverts: {len(found)}, slow moves: {len(slow)}")
    assert found == [], f"{len(found)} revert(s) of the zone: {found}"
    assert slow == [], f"moves not visible within {VISIBLE_WITHIN}s: {slow}"
