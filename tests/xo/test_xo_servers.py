"""XO's connections to its pools (``GET /servers``), read through the real adapter.

The lifecycle trusts a halted VM for the out-of-service taint only while XO's
server of its pool is connected without an error (``domain.policies.xo_servers``),
and a VM never seen is kept while a server is lost: what XO writes there must
come through as it means (``poolId`` only while connected, ``error`` in any shape
XO serialises it, a route an older XO does not have).
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from adapters.xenorchestra import XOHttpClient, XOInventory
from adapters.xenorchestra.auth import Credentials
from domain.model import PoolPresence
from domain.policies.xo_servers import lost_servers, pool_current
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import TOKEN, World, make_inventory


@pytest.mark.parametrize(
    ("error", "said"),
    [
        pytest.param({"code": "EVENTS_LOST", "call": {}}, "EVENTS_LOST", id="error-code"),
        pytest.param({"message": "connect ETIMEDOUT"}, "connect ETIMEDOUT", id="error-message"),
        pytest.param({}, "an error, no message", id="error-serialised-empty"),
    ],
)
async def test_a_server_with_an_error_leaves_its_pool_not_current(
    xo: FakeXOServer, world: World, error: object, said: str
) -> None:
    async with make_inventory(xo) as inventory:
        fine = await inventory.servers()
        xo.state.events_failing(world.pool_a, error)
        failing = await inventory.servers()
        xo.state.events_failing(world.pool_a, None)
        back = await inventory.servers()

    assert fine is not None and failing is not None and back is not None
    assert pool_current(fine, world.pool_a) and pool_current(back, world.pool_a)
    assert not pool_current(failing, world.pool_a) and pool_current(failing, world.pool_b)
    assert [s.error for s in failing if s.pool_id == world.pool_a] == [said]
    assert lost_servers(failing) == []  # connected, objects served: not lost


async def test_a_lost_pool_s_server_names_no_pool(xo: FakeXOServer, world: World) -> None:
    xo.state.disconnect_pool(world.pool_b)
    async with make_inventory(xo) as inventory:
        servers = await inventory.servers()

    assert servers is not None
    assert not pool_current(servers, world.pool_b)
    assert [s.pool_id for s in servers if s.status != "connected"] == [""]
    assert len(lost_servers(servers)) == 1


class _RouteGone(httpx.AsyncHTTPTransport):
    """The network to the fake XO, where ``path`` is answered as an older XO's router
    answers a route it does not have (an HTML 404)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/rest/v0{self.path}":
            page = b"<!DOCTYPE html><pre>Cannot GET " + self.path.encode() + b"</pre>"
            headers = {"content-type": "text/html; charset=utf-8"}
            return httpx.Response(404, headers=headers, stream=httpx.ByteStream(page))
        return await super().handle_async_request(request)


def _older_xo(xo: FakeXOServer, path: str) -> XOInventory:
    credentials = Credentials(token=SecretStr(TOKEN))
    return XOInventory(
        XOHttpClient(url=xo.url, credentials=credentials, transport=_RouteGone(path))
    )


async def test_an_xo_without_servers_says_it_cannot_tell(xo: FakeXOServer) -> None:
    async with _older_xo(xo, "/servers") as inventory:
        assert await inventory.servers() is None


async def test_an_xo_without_control_domains_vouches_for_a_pool_it_holds(
    xo: FakeXOServer, world: World
) -> None:
    """Before Sept 2024 XO has no ``/vm-controllers``: the pool's own answer decides."""
    xo.state.disconnect_pool(world.pool_b)
    async with _older_xo(xo, "/vm-controllers") as inventory:
        known = await inventory.pools_known(pool_ids=[world.pool_a, world.pool_b])
    assert known == {world.pool_a: PoolPresence.HELD, world.pool_b: PoolPresence.LOST}
