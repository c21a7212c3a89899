"""A VM's 404 counts as a deletion only if it holds on both sides of the pool check.

On a 404 from ``get_vm``, ``domain.matching.confirm_absence`` asks XO (through
the real adapter here) for every pool the node was placed in, then for the VM
again. A pool XO reconnects in between brings the VM back: the first 404 was the
outage, not a deletion. With ``deletionConfirmDelay: 0`` one such sighting
would delete the node.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from adapters.xenorchestra import XOHttpClient, XOInventory
from adapters.xenorchestra.auth import Credentials
from domain.errors import PoolUnavailableError, ProtocolError, VMDeletedError
from domain.matching import confirm_absence
from domain.model import ChangeKind, VMChange
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import TOKEN, HeldAnswers, World, collecting, held_inventory, make_inventory

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
POOL_CHECK = "GET /pools/{id}"


async def test_a_pool_reconnected_during_the_check_brings_the_vm_back(
    xo: FakeXOServer, world: World
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)

    async with make_inventory(xo) as inv:
        await inv.snapshot()  # the CCM's passes saw the VM in pool A
        xo.state.disconnect_pool(world.pool_a)
        # The pool check is slow: XO reconnects the pool while it is on its way.
        xo.faults.set(latency=0.3, endpoint=POOL_CHECK)
        lookup = asyncio.create_task(confirm_absence(inv, vm_id=VM_ID, pools=[world.pool_a]))
        while not xo.requests.snapshot().get(POOL_CHECK):  # noqa: ASYNC110 - the VM is 404 now
            await asyncio.sleep(0.01)
        xo.state.reconnect_pool(world.pool_a)
        vm = await lookup

    assert vm.id == VM_ID


async def test_a_vm_absent_before_and_after_the_pool_check_is_deleted(
    xo: FakeXOServer, world: World
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    xo.state.delete_vm(VM_ID)

    async with make_inventory(xo) as inv:
        assert await inv.get_vm(vm_id=VM_ID) is None
        verdict = await confirm_absence(inv, vm_id=VM_ID, pools=[world.pool_a, world.pool_b])
        assert isinstance(verdict, VMDeletedError)

    # One request for the VM on each side of the pool checks, one per pool.
    counts = xo.requests.snapshot()
    assert (counts["GET /vms/{id}"], counts[POOL_CHECK]) == (2, 2)


class _ByIdAnswers(httpx.AsyncHTTPTransport):
    """The network to the fake XO, where ``GET /vms/{id}`` gets ``page`` (a 404 as
    ``status``) instead of XO's answer: what an older XO's router or a proxy routing
    by path answers for that route; every other request reaches XO."""

    def __init__(self, page: bytes, content_type: str) -> None:
        super().__init__()
        self.page, self.content_type = page, content_type

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/rest/v0/vms/"):
            headers = {"content-type": self.content_type}
            return httpx.Response(404, headers=headers, stream=httpx.ByteStream(self.page))
        return await super().handle_async_request(request)


#: XO before its REST API's VM getter (Feb 2025): Express's page for an unmatched route
LEGACY_PAGE = b"<!DOCTYPE html><html><body><pre>Cannot GET /rest/v0/vms/x</pre></body></html>"
#: a gateway's own JSON 404 (Spring's shape): an "error" string, no object named
GATEWAY_JSON = b'{"status":404,"error":"Not Found","path":"/rest/v0/vms/x"}'


@pytest.mark.parametrize(
    ("page", "content_type"),
    [
        pytest.param(LEGACY_PAGE, "text/html", id="html-page"),
        pytest.param(GATEWAY_JSON, "application/json", id="gateway-json"),
    ],
)
async def test_a_404_that_is_not_xo_naming_the_vm_is_checked_against_xos_list(
    xo: FakeXOServer, world: World, page: bytes, content_type: str
) -> None:
    """A 404 for ``GET /vms/{id}`` that is not XO's error object naming that VM proves
    nothing by itself: XO's own list says whether the VM exists (an older XO without a
    VM getter keeps its deletions; a proxy's page never makes a running VM absent)."""
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    client = XOHttpClient(
        url=xo.url,
        credentials=Credentials(token=SecretStr(TOKEN)),
        transport=_ByIdAnswers(page, content_type),
    )
    async with XOInventory(client) as inventory:
        with pytest.raises(ProtocolError, match="lists it"):
            await inventory.get_vm(vm_id=VM_ID)  # running: XO lists it
        xo.state.delete_vm(VM_ID)
        assert await inventory.get_vm(vm_id=VM_ID) is None  # XO's list: no such VM
        assert await inventory.get_vm(vm_id="not-a-uuid") is None  # no VM has that id


async def test_the_pool_a_vm_left_with_is_remembered_from_xos_events(
    xo: FakeXOServer, world: World
) -> None:
    """A VM moved to pool B (XO's update event), then XO loses pool B (a remove event
    carrying the VM's last object): its node may name pool A only, the pool to check is
    B, with no list asked in between."""
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    async with make_inventory(xo) as inventory, collecting(inventory.changes()) as changes:
        await changes.next()  # RESYNC
        xo.state.migrate_vm(VM_ID, host_id=world.host_b1)
        moved = await changes.next()
        xo.state.disconnect_pool(world.pool_b)
        while (await changes.next()).kind is not ChangeKind.REMOVED:
            pass
        seen = inventory.pools_seen(vm_id=VM_ID)
        verdict = await confirm_absence(inventory, vm_id=VM_ID, pools=[world.pool_a])

    assert isinstance(moved, VMChange) and moved.kind is ChangeKind.UPDATED
    assert seen is not None and world.pool_b in seen
    assert isinstance(verdict, PoolUnavailableError) and verdict.pools == (world.pool_b,)


async def test_pool_answers_on_their_way_before_the_vm_s_404_are_not_shared(
    xo: FakeXOServer, world: World
) -> None:
    """s8b S1: other nodes' pool checks asked while XO still had pool A (their
    answers slow on the wire) must not answer for a VM whose 404 came after XO lost
    it: joined, "pool A is there and loaded" read as a deletion."""
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    pool_a = world.pool_a
    network = HeldAnswers()
    async with held_inventory(xo, network) as inv:
        await inv.snapshot()  # the CCM's passes saw the VM in pool A
        # Another node's check: its pool answer is back, its control-domain one slow.
        controllers = network.hold("/vm-controllers")
        first = asyncio.create_task(inv.pools_known(pool_ids=[pool_a]))
        await controllers.answered.wait()  # XO answered: loaded
        # A third node's check: its pool answer slow too.
        pool = network.hold(f"/pools/{pool_a}")
        second = asyncio.create_task(inv.pools_known(pool_ids=[pool_a]))
        await pool.answered.wait()  # XO answered: pool A is there
        xo.state.disconnect_pool(pool_a)
        assert await inv.get_vm(vm_id=VM_ID) is None
        check = asyncio.create_task(confirm_absence(inv, vm_id=VM_ID, pools=[pool_a]))
        await asyncio.sleep(0.1)  # the check on its way, sharing what it may
        pool.release.set()
        await asyncio.sleep(0.1)
        controllers.release.set()
        verdict = await check
        await asyncio.gather(first, second)

    assert isinstance(verdict, PoolUnavailableError)
    assert not isinstance(verdict, VMDeletedError)
