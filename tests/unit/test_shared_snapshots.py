"""SharedSnapshots: a snapshot whose readers all left still ends without noise."""

from __future__ import annotations

import asyncio
import gc

import pytest

from adapters.memory import FakeClock, InMemoryInventory
from application.snapshots import SharedSnapshots
from domain.errors import InventoryError
from domain.freshness import Freshness
from domain.model import InventorySnapshot
from tests.loop_checks import unhandled_by_the_loop


class _SlowThenDown(InMemoryInventory):
    """XO that answers the snapshot only when told, and then with an error."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def snapshot(self) -> InventorySnapshot:
        await self.answer.wait()
        raise InventoryError("Xen Orchestra is unreachable")


async def test_a_snapshot_whose_readers_left_fails_without_a_stray_traceback() -> None:
    """A reader cancelled (shutdown, a timeout) while the snapshot it started is in flight:
    the snapshot's failure was logged by asyncio as "Task exception was never retrieved"
    with a traceback, an operator's log full of noise at every stop while XO was down."""
    inventory = _SlowThenDown()
    shared = SharedSnapshots(
        inventory=inventory, freshness=Freshness(), clock=FakeClock(), max_age=2.0
    )
    with unhandled_by_the_loop() as unhandled:
        reader = asyncio.create_task(shared.take())
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        inventory.answer.set()
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()  # asyncio reports an unretrieved exception when the task is collected
        assert unhandled == []
    # the failure is not kept: the next reader asks XO again, and hears why
    with pytest.raises(InventoryError, match="unreachable"):
        await shared.take()
