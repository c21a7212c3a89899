"""The host and pool caches never go back in time: a list answer observed before the
entry it would replace (an older snapshot finishing late, a lone request overtaken)
leaves that entry alone.

Labels are computed from a fresh VM answer and the cached host and pool, so a cache
that goes back writes an older zone, region or host name onto a Node than the one
already applied (review s8a, F1: snapshots of the label pass, of joining nodes and of
the polling stream run concurrently, and the one asked first may finish last).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import pytest
from pydantic import SecretStr

from adapters.xenorchestra import XOHttpClient, XOInventory
from adapters.xenorchestra.auth import Credentials
from domain.model import ChangeKind, PlacementChange
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import TOKEN, World, collecting


class _ListsHeld(httpx.AsyncHTTPTransport):
    """The network to the fake XO, where the next answers of chosen lists (once
    :meth:`hold` names them) are read as XO sends them, their content fixed then, and
    held until the test releases each."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}

    def hold(self, *paths: str) -> None:
        self.answered = {path: asyncio.Event() for path in paths}
        self.release = {path: asyncio.Event() for path in paths}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        path = request.url.path.removeprefix("/rest/v0")
        if path not in self.answered or self.answered[path].is_set():
            return response
        body = await response.aread()  # decoded: gzip undone
        self.answered[path].set()
        await self.release[path].wait()
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length")
        ]
        return httpx.Response(response.status_code, headers=headers, stream=httpx.ByteStream(body))


@pytest.mark.parametrize("events", [True, False], ids=["event-stream", "no-events"])
async def test_a_snapshot_that_finishes_last_never_puts_an_older_host_back(
    xo: FakeXOServer, world: World, events: bool
) -> None:
    xo.state.tag_host(world.host_a1, tags=["k8s.zone=old"])
    xo.state.tag_pool(world.pool_a, tags=["k8s.region=old"])
    network = _ListsHeld()
    client = XOHttpClient(
        url=xo.url, credentials=Credentials(token=SecretStr(TOKEN)), transport=network
    )
    async with AsyncExitStack() as stack:
        inventory = await stack.enter_async_context(XOInventory(client))
        if events:
            changes = await stack.enter_async_context(collecting(inventory.changes()))
            assert (await changes.next()).kind is ChangeKind.RESYNC
        network.hold("/vms", "/hosts", "/pools")
        older = asyncio.create_task(inventory.snapshot())
        for path in ("/vms", "/hosts", "/pools"):
            await network.answered[path].wait()  # XO answered "old" for all three
        network.release["/hosts"].set()
        network.release["/pools"].set()  # on their way; the VM list is slow

        xo.state.tag_host(world.host_a1, tags=["k8s.zone=new"])
        xo.state.tag_pool(world.pool_a, tags=["k8s.region=new"])
        if events:
            moved = [await changes.next(), await changes.next()]
            assert all(isinstance(change, PlacementChange) for change in moved)
        await inventory.snapshot()  # asked after the change: "new"
        network.release["/vms"].set()
        await asyncio.wait_for(older, 5)

        host = await inventory.get_host(host_id=world.host_a1)
        pool = await inventory.get_pool(pool_id=world.pool_a)

    assert host is not None and host.tags == ("k8s.zone=new",)
    assert pool is not None and pool.tags == ("k8s.region=new",)
