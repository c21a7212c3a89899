"""Every request the adapter sends, held to the operation XO's spec defines for it.

One run drives each adapter path (the startup check, the snapshot, lookups
that hit and miss the caches, the pool confirmation of a missing VM, the name
search, the event stream and its subscriptions) against the fake XO, with
token and with basic credentials; the fake records each request and answer,
and all of them must be as XO's spec says. The contract suite
(``tests/contract``) holds its own runs to the same spec.
"""

from __future__ import annotations

import re
from contextlib import aclosing

import pytest

from adapters.xenorchestra import inventory as xo_inventory
from adapters.xenorchestra.changes import EVENTS, SUBSCRIBE
from domain.model import ChangeKind, PoolPresence
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.spec.xo_spec import XOSpec
from tests.xo.support import (
    HOST_A1,
    PASSWORD,
    POOL_A,
    POOL_B,
    TOKEN,
    USERNAME,
    build_world,
    make_inventory,
    next_change,
)

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
GONE = "00000000-1111-4222-8333-444444444444"
ADAPTER_ENDPOINTS = {
    xo_inventory.VMS,
    xo_inventory.VM_BY_ID,
    xo_inventory.HOST_BY_ID,
    xo_inventory.HOSTS,
    xo_inventory.POOLS,
    xo_inventory.POOL_BY_ID,
    xo_inventory.VM_CONTROLLERS,
    xo_inventory.CURRENT_USER,
    xo_inventory.USER_BY_ID,
    EVENTS,
    SUBSCRIBE,
}


def endpoint(method: str, path: str) -> str:
    """``GET /vms/{id}``: the adapter's name for a recorded request."""
    relative = path.removeprefix("/rest/v0")
    relative = re.sub(r"^/events/[^/]+/subscriptions$", "/events/{id}/subscriptions", relative)
    relative = re.sub(r"^/(vms|hosts|pools)/[^/]+$", r"/\1/{id}", relative)
    relative = re.sub(r"^/users/(?!me$)[^/]+$", "/users/{id}", relative)
    return f"{method} {relative}"


@pytest.mark.parametrize("auth", ["token", "basic"])
async def test_every_request_the_adapter_sends_is_the_spec_s(xo_spec: XOSpec, auth: str) -> None:
    async with FakeXOServer(token=TOKEN, users={USERNAME: PASSWORD}, ping_interval=0.2) as xo:
        build_world(xo)
        xo.state.add_vm(name_label="node 1/a", vm_id=VM_ID, host_id=HOST_A1)
        xo.exchanges.start()
        credentials = (
            {"token": TOKEN}
            if auth == "token"
            else {"token": None, "username": USERNAME, "password": PASSWORD}
        )
        async with make_inventory(xo, **credentials) as inventory:  # type: ignore[arg-type]
            await inventory.check()
            assert await inventory.admin_view() is True
            assert await inventory.get_host(host_id=HOST_A1) is not None  # a miss: asks XO
            assert await inventory.get_pool(pool_id=POOL_A) is not None
            await inventory.snapshot()
            assert (await inventory.get_vm(vm_id=VM_ID)).id == VM_ID
            assert await inventory.get_vm(vm_id=GONE) is None
            assert await inventory.pools_known(pool_ids=[POOL_A, POOL_B]) == {
                POOL_A: PoolPresence.HELD,
                POOL_B: PoolPresence.HELD,
            }
            assert [vm.id for vm in await inventory.find_vms_by_name(name_label="node 1/a")] == [
                VM_ID
            ]
            async with aclosing(inventory.changes()) as changes:
                assert (await next_change(changes)).kind is ChangeKind.RESYNC
                xo.state.stop_vm(VM_ID)
                assert (await next_change(changes)).kind is ChangeKind.UPDATED

    exchanges = xo.exchanges.exchanges
    assert {endpoint(e.method, e.path) for e in exchanges} == ADAPTER_ENDPOINTS
    assert xo_spec.exchange_problems(exchanges) == []
