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

import pytest

from domain.model import ChangeKind, PlacementChange
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import HeldAnswers, World, collecting, held_inventory


@pytest.mark.parametrize("events", [True, False], ids=["event-stream", "no-events"])
async def test_a_snapshot_that_finishes_last_never_puts_an_older_host_back(
    xo: FakeXOServer, world: World, events: bool
) -> None:
    xo.state.tag_host(world.host_a1, tags=["k8s.zone=old"])
    xo.state.tag_pool(world.pool_a, tags=["k8s.region=old"])
    network = HeldAnswers()
    async with AsyncExitStack() as stack:
        inventory = await stack.enter_async_context(held_inventory(xo, network))
        if events:
            changes = await stack.enter_async_context(collecting(inventory.changes()))
            assert (await changes.next()).kind is ChangeKind.RESYNC
        held = {path: network.hold(path) for path in ("/vms", "/hosts", "/pools")}
        older = asyncio.create_task(inventory.snapshot())
        for one in held.values():
            await one.answered.wait()  # XO answered "old" for all three
        held["/hosts"].release.set()
        held["/pools"].release.set()  # on their way; the VM list is slow

        xo.state.tag_host(world.host_a1, tags=["k8s.zone=new"])
        xo.state.tag_pool(world.pool_a, tags=["k8s.region=new"])
        if events:
            moved = [await changes.next(), await changes.next()]
            assert all(isinstance(change, PlacementChange) for change in moved)
        await inventory.snapshot()  # asked after the change: "new"
        held["/vms"].release.set()
        await asyncio.wait_for(older, 5)

        host = await inventory.get_host(host_id=world.host_a1)
        pool = await inventory.get_pool(pool_id=world.pool_a)

    assert host is not None and host.tags == ("k8s.zone=new",)
    assert pool is not None and pool.tags == ("k8s.region=new",)


async def test_two_snapshots_that_crossed_and_differ_leave_the_host_to_be_asked_again(
    xo: FakeXOServer, world: World
) -> None:
    """Without events (XO before 5.113): the first snapshot asked, answered before a
    retag, finishes first; a second one, asked before the first came back and answered
    after the retag, finishes next. Neither is newer for certain: the host is asked
    again, and XO's answer now is what the cache holds."""
    xo.state.tag_host(world.host_a1, tags=["k8s.zone=old"])
    network = HeldAnswers()
    async with held_inventory(xo, network) as inventory:
        first_vms, first_hosts = network.hold("/vms"), network.hold("/hosts")
        first = asyncio.create_task(inventory.snapshot())
        await first_vms.answered.wait()
        await first_hosts.answered.wait()  # the first's host list said "old"
        first_hosts.release.set()
        xo.state.tag_host(world.host_a1, tags=["k8s.zone=new"])
        second_vms, second_hosts = network.hold("/vms"), network.hold("/hosts")
        second = asyncio.create_task(inventory.snapshot())
        await second_vms.answered.wait()
        await second_hosts.answered.wait()  # the second's said "new"
        second_hosts.release.set()
        first_vms.release.set()
        await asyncio.wait_for(first, 5)
        second_vms.release.set()
        await asyncio.wait_for(second, 5)
        xo.requests.reset()

        host = await inventory.get_host(host_id=world.host_a1)
        again = await inventory.get_host(host_id=world.host_a1)

    assert host is not None and host.tags == ("k8s.zone=new",)
    assert again == host
    assert xo.requests.snapshot() == {"GET /hosts/{id}": 1}  # asked once, then cached


async def test_a_lone_answer_back_after_a_snapshot_settles_into_the_cache_that_serves(
    xo: FakeXOServer, world: World
) -> None:
    """A host asked alone (a cache miss) while a snapshot is on its way, and answered
    after it: what the lone answer settles is what the next reader gets (it went into
    the cache the snapshot had just replaced, and the next reader got the snapshot's
    older answer, after the asker had been handed the newer one)."""
    xo.state.tag_host(world.host_a1, tags=["k8s.zone=old"])
    network = HeldAnswers()
    async with held_inventory(xo, network) as inventory:
        listed = network.hold("/hosts")
        snapshot = asyncio.create_task(inventory.snapshot())
        await listed.answered.wait()  # the list said "old"
        xo.state.tag_host(world.host_a1, tags=["k8s.zone=new"])
        lone = network.hold(f"/hosts/{world.host_a1}")
        asked = asyncio.create_task(inventory.get_host(host_id=world.host_a1))
        await lone.answered.wait()  # XO said "new"; held on the wire
        listed.release.set()
        await asyncio.wait_for(snapshot, 5)
        lone.release.set()
        handed = await asyncio.wait_for(asked, 5)
        cached = await inventory.get_host(host_id=world.host_a1)

    assert handed is not None and handed.tags == ("k8s.zone=new",)
    assert cached == handed
