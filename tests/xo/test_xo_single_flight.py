"""One XO request per host or pool at a time, over HTTP against the fake XO: when every
worker waiting on it leaves (shutdown, a timeout) and XO then fails it, the failure is
nobody's to report and must not reach asyncio's "never retrieved" traceback."""

from __future__ import annotations

import asyncio
import gc

import pytest

from domain.errors import ProtocolError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.loop_checks import unhandled_by_the_loop
from tests.xo.support import World, make_inventory


async def test_a_lookup_whose_waiters_left_fails_without_a_stray_traceback(
    xo: FakeXOServer, world: World
) -> None:
    xo.faults.set(latency=0.2, garbage="deep")
    async with make_inventory(xo) as inventory:
        with unhandled_by_the_loop() as unhandled:
            waiter = asyncio.create_task(inventory.get_host(host_id=world.host_a1))
            await asyncio.sleep(0.05)  # the request is in flight
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await asyncio.sleep(0.5)  # XO answers garbage: the shared request fails
            gc.collect()  # asyncio reports an unretrieved exception when the task is collected
            assert unhandled == []
        # nothing of the failure is kept: the next lookup asks XO and hears why
        with pytest.raises(ProtocolError):
            await inventory.get_host(host_id=world.host_a1)
