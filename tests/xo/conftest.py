"""Fixtures: a fake XO on loopback (stopped after each test) and an adapter for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.xenorchestra import XOInventory
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import (
    PASSWORD,
    PING_INTERVAL,
    TOKEN,
    USERNAME,
    World,
    assert_no_tasks_left,
    build_world,
    make_inventory,
)


@pytest.fixture(autouse=True)
async def no_tasks_left_behind() -> AsyncIterator[None]:
    yield
    await assert_no_tasks_left()


@pytest.fixture
async def xo() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(
        host="127.0.0.1",
        port=0,
        token=TOKEN,
        users={USERNAME: PASSWORD},
        ping_interval=PING_INTERVAL,
        seed=1,
    ) as server:
        yield server


@pytest.fixture
def world(xo: FakeXOServer) -> World:
    return build_world(xo)


@pytest.fixture
async def inventory(xo: FakeXOServer) -> AsyncIterator[XOInventory]:
    async with make_inventory(xo) as inv:
        yield inv
