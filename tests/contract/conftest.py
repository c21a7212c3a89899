"""The two contract subjects, each with the same two-pool world."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.testing.fake_xo import FakeXOControlClient, FakeXOServer
from tests.contract.drivers import Driver, MemoryDriver, XOHTTPDriver
from tests.xo.support import (
    HOST_A1,
    HOST_A2,
    HOST_B1,
    PING_INTERVAL,
    POOL_A,
    POOL_B,
    TOKEN,
    assert_no_tasks_left,
    make_inventory,
)


@pytest.fixture(autouse=True)
async def no_tasks_left_behind() -> AsyncIterator[None]:
    yield
    await assert_no_tasks_left()


@pytest.fixture(params=["memory", "xo-http"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Driver]:
    if request.param == "memory":
        driver: Driver = MemoryDriver()
        await _build_world(driver)
        yield driver
        return
    async with (
        FakeXOServer(host="127.0.0.1", port=0, token=TOKEN, ping_interval=PING_INTERVAL) as xo,
        FakeXOControlClient(xo.url) as control,
        make_inventory(xo) as inventory,
    ):
        driver = XOHTTPDriver(inventory, control)
        await _build_world(driver)
        yield driver


async def _build_world(driver: Driver) -> None:
    """Pool A (hosts A1, A2) and pool B (host B1)."""
    await driver.add_pool(pool_id=POOL_A, name_label="Pool A")
    await driver.add_pool(pool_id=POOL_B, name_label="Pool B")
    await driver.add_host(host_id=HOST_A1, pool_id=POOL_A, name_label="host a1")
    await driver.add_host(host_id=HOST_A2, pool_id=POOL_A, name_label="host a2")
    await driver.add_host(host_id=HOST_B1, pool_id=POOL_B, name_label="host b1")
