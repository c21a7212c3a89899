"""Answers that break decoding stay inside the adapter's error types (issue 13, case 6).

Over HTTP against the fake XO (``fake_xo/garbage.py``): a ``Content-Encoding``
the body does not have, JSON nested 100,000 deep, ``1e400`` CPUs or memory,
fields of the wrong types and bytes that are not UTF-8 once escaped as
``httpx.DecodingError``, ``RecursionError``, ``OverflowError`` or
``ValueError``: a lifecycle pass then stopped at that node, the event stream
(and with it the change router) died. Each is now a ProtocolError for that
call, one bad VM costs only that VM, and the stream goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from adapters.memory import (
    InMemoryNodeStore,
    RecordingPokes,
)
from adapters.xenorchestra import XOInventory
from application.change_router import ChangeRouter
from domain import labels
from domain.errors import InventoryError, ProtocolError
from domain.model import ChangeKind, Node, Readiness
from domain.options import CCMOptions
from domain.providerid import ProviderID
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.world import World as CCM
from tests.xo.support import World, collecting, make_inventory

BAD = "0a0a0a0a-0000-4000-8000-00000000000b"
GOOD = "0c0c0c0c-0000-4000-8000-00000000000c"
HALTED = "0d0d0d0d-0000-4000-8000-00000000000d"
HOST = "00000000-0000-4000-8000-000000000000"
MODES = ["bad-encoding", "deep", "overflow", "wrong-types", "bad-utf8"]
#: the modes that spoil one object, not the whole answer
OBJECT_MODES = ["overflow", "wrong-types"]

Call = Callable[[XOInventory], Awaitable[object]]


async def _get_vm(inv: XOInventory) -> object:
    return await inv.get_vm(vm_id=BAD)


async def _check(inv: XOInventory) -> object:
    await inv.check()
    return await inv.snapshot()  # the check reads ids only: the snapshot reads the VM


async def _find(inv: XOInventory) -> object:
    return await inv.find_vms_by_name(name_label="bad")


async def _get_host(inv: XOInventory) -> object:
    return await inv.get_host(host_id=HOST)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("call", "endpoint"),
    [
        pytest.param(_get_vm, "GET /vms/{id}", id="get-vm"),
        pytest.param(_check, "GET /vms", id="check-then-snapshot"),
        pytest.param(_find, "GET /vms", id="find-by-name"),
        pytest.param(_get_host, "GET /hosts/{id}", id="get-host"),
    ],
)
async def test_an_undecodable_answer_is_a_protocol_error(
    xo: FakeXOServer, world: World, mode: str, call: Call, endpoint: str
) -> None:
    xo.state.add_vm(name_label="bad", vm_id=BAD, pool_id=world.pool_a)
    xo.state.add_host(pool_id=world.pool_a, name_label="h", host_id=HOST)
    if call is _get_host and mode in OBJECT_MODES:
        pytest.skip("hosts have no CPUs or typed VM fields to spoil")
    xo.faults.set(garbage=mode)

    async with make_inventory(xo) as inv:
        with pytest.raises(ProtocolError) as caught:
            await call(inv)

    assert endpoint in str(caught.value)


@pytest.mark.parametrize("mode", OBJECT_MODES)
async def test_one_bad_vm_is_left_out_of_the_snapshot_and_the_others_stay(
    xo: FakeXOServer, world: World, mode: str
) -> None:
    xo.state.add_vm(name_label="bad", vm_id=BAD, pool_id=world.pool_a)
    xo.state.add_vm(name_label="good", vm_id=GOOD, pool_id=world.pool_a)
    xo.faults.set(garbage=mode, target=BAD)

    async with make_inventory(xo) as inv:
        snapshot = await inv.snapshot()
        with pytest.raises(ProtocolError):
            await inv.get_vm(vm_id=BAD)
        assert (await inv.get_vm(vm_id=GOOD)).id == GOOD

    assert set(snapshot.vms) == {GOOD}


def _node(name: str, vm_id: str, pool_id: str) -> Node:
    return Node(
        name=name,
        uid=f"uid-{name}",
        provider_id=str(ProviderID(pool_id=pool_id, vm_id=vm_id)),
        labels={labels.REGION: pool_id},
        readiness=Readiness.FALSE,
    )


@pytest.mark.parametrize("mode", MODES)
async def test_one_bad_vm_does_not_stop_the_lifecycle_pass_for_the_others(
    xo: FakeXOServer, world: World, mode: str
) -> None:
    xo.state.add_vm(name_label="bad", vm_id=BAD, pool_id=world.pool_a, power_state="Halted")
    xo.state.add_vm(name_label="halted", vm_id=HALTED, pool_id=world.pool_a, power_state="Halted")
    xo.faults.set(garbage=mode, target=BAD)
    nodes = InMemoryNodeStore()
    nodes.create(_node("n-bad", BAD, world.pool_a))  # first: the pass meets it first
    nodes.create(_node("n-halted", HALTED, world.pool_a))

    async with make_inventory(xo) as inv:
        service = CCM(options=CCMOptions(), inventory=inv, nodes=nodes).lifecycle
        for _ in range(2):  # the bad VM fails again next period, and nothing else does
            await service.run_pass()

    assert not nodes.nodes["n-bad"].has_taint(labels.SHUTDOWN_TAINT.key)
    assert nodes.nodes["n-halted"].has_taint(labels.SHUTDOWN_TAINT.key)
    assert set(nodes.nodes) == {"n-bad", "n-halted"}, "nothing deleted"


@pytest.mark.parametrize("mode", [*OBJECT_MODES, "deep", "truncated", "html"])
async def test_a_bad_vm_frame_is_dropped_and_the_stream_goes_on(
    xo: FakeXOServer, world: World, mode: str
) -> None:
    xo.state.add_vm(name_label="bad", vm_id=BAD, pool_id=world.pool_a)
    xo.state.add_vm(name_label="good", vm_id=GOOD, pool_id=world.pool_a)

    async with make_inventory(xo) as inv, collecting(inv.changes()) as changes:
        assert (await changes.next()).kind is ChangeKind.RESYNC
        xo.faults.set(garbage=mode, endpoint="GET /events", garble_frames=1)
        xo.state.stop_vm(BAD)  # this frame is spoiled
        xo.state.stop_vm(GOOD)
        change = await changes.next()

    assert (change.kind, change.vm and change.vm.id) == (ChangeKind.UPDATED, GOOD)


@pytest.mark.parametrize("mode", [*OBJECT_MODES, "deep"])
async def test_the_change_router_outlives_a_bad_frame(
    xo: FakeXOServer, world: World, mode: str
) -> None:
    xo.state.add_vm(name_label="bad", vm_id=BAD, pool_id=world.pool_a)
    xo.state.add_vm(name_label="good", vm_id=GOOD, pool_id=world.pool_a)
    nodes = InMemoryNodeStore()
    nodes.create(_node("n-good", GOOD, world.pool_a))
    pokes = RecordingPokes()

    async with make_inventory(xo) as inv:
        router = ChangeRouter(inventory=inv, nodes=nodes, pokes=pokes)
        running = asyncio.create_task(router.run())
        try:
            async with asyncio.timeout(5):
                await pokes.resync_seen.wait()
            xo.faults.set(garbage=mode, endpoint="GET /events", garble_frames=1)
            xo.state.stop_vm(BAD)
            xo.state.stop_vm(GOOD)
            async with asyncio.timeout(5):
                assert (await pokes.queue.get())[1] == "n-good"
            assert not running.done(), "the router must keep running"
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def test_a_broken_decoder_is_never_an_escaping_library_error(
    xo: FakeXOServer, world: World
) -> None:
    """The adapter's error for httpx's own failure names it (InventoryError, no traceback)."""
    xo.state.add_vm(name_label="bad", vm_id=BAD, pool_id=world.pool_a)
    xo.faults.set(garbage="bad-encoding")

    async with make_inventory(xo) as inv:
        with pytest.raises(InventoryError, match="DecodingError"):
            await inv.check()
