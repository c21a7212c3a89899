"""Where XO was seen to place a VM, so that a VM moved to a pool XO then lost is never
read as deleted while its node still names the pool it left (label sync off, or not
there yet): the four ways review s8d found to lose that, each a test here.

Every VM list, lookup and event says where XO places the VM; the adapter keeps each
pool other than the VM list's, at least an hour and then until XO holds that pool
again. A VM this process never saw, while XO has lost one of its servers, is never
read as deleted (it may have moved there while the CCM was down).
"""

from __future__ import annotations

import asyncio

import pytest

import adapters.xenorchestra.inventory as xo_inventory
from domain.errors import PoolUnavailableError, VMDeletedError, VMWhereaboutsUnknownError
from domain.matching import confirm_absence
from domain.model import ChangeKind
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import World, collecting, make_inventory

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"


async def _verdict(inventory: xo_inventory.XOInventory, world: World) -> object:
    return await confirm_absence(inventory, vm_id=VM_ID, pools=[world.pool_a])


async def test_a_remove_event_keeps_its_pool_through_the_next_list(
    xo: FakeXOServer, world: World
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    async with make_inventory(xo) as inventory, collecting(inventory.changes()) as changes:
        await changes.next()  # RESYNC
        await inventory.snapshot()  # a pass lists the VM in pool A
        xo.state.migrate_vm(VM_ID, host_id=world.host_b1)
        await changes.next()
        xo.state.disconnect_pool(world.pool_b)
        while (await changes.next()).kind is not ChangeKind.REMOVED:
            pass
        await inventory.snapshot()  # the next pass: the VM in no list now
        verdict = await _verdict(inventory, world)

    assert isinstance(verdict, PoolUnavailableError) and world.pool_b in verdict.pools


@pytest.mark.parametrize("kept_over_an_hour", [False, True], ids=["lookup", "an-hour-on"])
async def test_the_pool_a_lookup_saw_is_checked_even_an_hour_on(
    xo: FakeXOServer, world: World, monkeypatch: pytest.MonkeyPatch, kept_over_an_hour: bool
) -> None:
    """Seen in pool B by a lookup only (the lists said A); with ``kept_over_an_hour``,
    pool B is still lost when the hour is over: XO does not hold it again."""
    monkeypatch.setattr(xo_inventory, "VANISHED_KEPT", 0.05 if kept_over_an_hour else 3600.0)
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    async with make_inventory(xo) as inventory:
        await inventory.snapshot()
        xo.state.migrate_vm(VM_ID, host_id=world.host_b1)
        seen = await inventory.get_vm(vm_id=VM_ID)
        xo.state.disconnect_pool(world.pool_b)
        await inventory.snapshot()
        if kept_over_an_hour:
            await asyncio.sleep(0.1)
            xo.state.add_vm(name_label="other", pool_id=world.pool_a)  # the list changes
            await inventory.snapshot()
        verdict = await _verdict(inventory, world)

    assert seen is not None and seen.pool_id == world.pool_b
    assert isinstance(verdict, PoolUnavailableError) and world.pool_b in verdict.pools


async def test_a_vm_never_seen_is_not_deleted_while_xo_has_lost_a_pool(
    xo: FakeXOServer, world: World
) -> None:
    """Moved and lost while the CCM was down (a rollout, a leader change)."""
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    xo.state.migrate_vm(VM_ID, host_id=world.host_b1)
    xo.state.disconnect_pool(world.pool_b)
    async with make_inventory(xo) as inventory:
        await inventory.snapshot()
        unsure = await _verdict(inventory, world)
        xo.state.reconnect_pool(world.pool_b)
        xo.state.delete_vm(VM_ID)
        deleted = await _verdict(inventory, world)  # every server up: the pools decide

    assert isinstance(unsure, VMWhereaboutsUnknownError)
    assert isinstance(deleted, VMDeletedError)
