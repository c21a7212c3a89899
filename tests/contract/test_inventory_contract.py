"""The Inventory port's contract, held against both subjects with identical assertions.

If the in-memory twin passes and the HTTP adapter fails (or the reverse),
one of them does not behave like Xen Orchestra: the unit tests built on the
twin would then prove nothing about production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from domain.errors import PoolUnavailableError, VMDeletedError, VMNotFoundError
from domain.matching import confirm_absence, locate_vm
from domain.model import (
    Change,
    ChangeKind,
    Node,
    PlacementChange,
    PoolPresence,
    PowerState,
    VMChange,
)
from domain.policies.system_uuid import swap_little_endian
from domain.policies.topology import resident_host_id
from domain.policies.xo_servers import lost_servers, pool_current
from tests.contract.drivers import GIB, Driver
from tests.xo.support import HOST_A1, HOST_A2, HOST_B1, POOL_A, POOL_B, next_change

VM_1 = "f07ab729-c0e8-721c-45ec-f11276377030"
HELD, LOST, WITHOUT_VMS = PoolPresence.HELD, PoolPresence.LOST, PoolPresence.WITHOUT_VMS
VM_2 = "3e1c9a0d-52b4-4f7e-8a6c-1d2e3f4a5b6c"
VM_3 = "9d8c7b6a-5f4e-4d3c-8b2a-190807060504"
UNKNOWN_VM = "00000000-1111-4222-8333-444444444444"
UNKNOWN_POOL = "99999999-8888-4777-8666-555555555555"
ADDRESSES = {"0/ipv4/0": "10.1.6.166", "0/ipv6/0": "fe80::fc2e:1ff:fef9:7538"}


async def add_running(driver: Driver, vm_id: str = VM_1, name: str = "node-1") -> None:
    await driver.add_vm(
        vm_id=vm_id,
        name_label=name,
        pool_id=POOL_A,
        host_id=HOST_A1,
        cpus=4,
        memory=8 * GIB,
        addresses=ADDRESSES,
        tags=("k8s", "worker"),
    )
    await driver.inventory.snapshot()  # the CCM's passes list XO's VMs


# -- lookups -------------------------------------------------------------------
@pytest.mark.parametrize(
    "spelling",
    [pytest.param(VM_1, id="lower-case"), pytest.param(VM_1.upper(), id="upper-case")],
)
async def test_get_vm_finds_a_vm_by_id_whatever_the_case(subject: Driver, spelling: str) -> None:
    await add_running(subject)

    vm = await subject.inventory.get_vm(vm_id=spelling)

    assert vm.id == VM_1


async def test_get_vm_returns_what_xo_reports_of_a_running_vm(subject: Driver) -> None:
    await add_running(subject)

    vm = await subject.inventory.get_vm(vm_id=VM_1)

    assert vm.name_label == "node-1"
    assert vm.power_state is PowerState.RUNNING
    assert vm.pool_id == POOL_A
    assert vm.container == HOST_A1
    assert vm.cpus == 4
    assert vm.memory_bytes == 8 * GIB
    assert vm.main_ip_address == "10.1.6.166"
    assert dict(vm.addresses) == ADDRESSES
    assert vm.tags == ("k8s", "worker")


async def test_a_halted_vms_container_is_its_pool_never_a_host(subject: Driver) -> None:
    await subject.add_vm(
        vm_id=VM_1, name_label="node-1", pool_id=POOL_A, host_id=HOST_A1, running=False
    )

    vm = await subject.inventory.get_vm(vm_id=VM_1)

    assert vm.power_state is PowerState.HALTED
    assert vm.container == POOL_A
    assert resident_host_id(vm) == ""
    assert vm.main_ip_address is None
    assert dict(vm.addresses) == {}


async def test_locate_vm_falls_back_to_the_little_endian_system_uuid(subject: Driver) -> None:
    await add_running(subject)
    node = Node(name="node-1", system_uuid=swap_little_endian(VM_1).upper())

    vm = await locate_vm(subject.inventory, node, match_by_name=False)

    assert vm.id == VM_1


# -- "gone" is not "deleted" -----------------------------------------------------
async def _vm_deleted(driver: Driver) -> tuple[str, ...]:
    await add_running(driver)
    await driver.delete_vm(VM_1)
    return (POOL_A,)


async def _pool_disconnected(driver: Driver) -> tuple[str, ...]:
    await add_running(driver)
    await driver.disconnect_pool(POOL_A)
    return (POOL_A,)


async def _pool_never_known(driver: Driver) -> tuple[str, ...]:
    return (UNKNOWN_POOL,)


async def _no_pool_given(driver: Driver) -> tuple[str, ...]:
    await add_running(driver)
    await driver.delete_vm(VM_1)
    return ()


async def _moved_then_new_pool_lost(driver: Driver) -> tuple[str, ...]:
    # Registered in pool A, now in pool B, which XO loses: A still answers.
    await add_running(driver)
    await driver.migrate_vm(VM_1, host_id=HOST_B1)
    await driver.disconnect_pool(POOL_B)
    return (POOL_A, POOL_B)


async def _moved_unlabelled_then_new_pool_lost(driver: Driver) -> tuple[str, ...]:
    # As above, but the node names pool A only (label sync off, or not done yet): the
    # VM is as absent as a deleted one; the pool XO was seen to hold it in tells.
    await add_running(driver)
    await driver.migrate_vm(VM_1, host_id=HOST_B1)
    await driver.inventory.snapshot()  # the CCM's passes list XO's VMs
    await driver.disconnect_pool(POOL_B)
    await driver.inventory.snapshot()
    return (POOL_A,)


async def _pool_back_without_its_vms(driver: Driver) -> tuple[str, ...]:
    # XO reconnected the pool but its fetch of the VMs failed (xen-api logs it, goes on).
    await add_running(driver)
    await driver.disconnect_pool(POOL_A)
    await driver.reconnect_pool(POOL_A, vms_loaded=False)
    return (POOL_A,)


async def _deleted_after_a_move(driver: Driver) -> tuple[str, ...]:
    await add_running(driver)
    await driver.migrate_vm(VM_1, host_id=HOST_B1)
    await driver.delete_vm(VM_1)
    return (POOL_A, POOL_B)


@pytest.mark.parametrize(
    ("arrange", "expected", "unknown"),
    [
        pytest.param(_no_pool_given, VMNotFoundError, (), id="no-pool-id-not-found"),
        pytest.param(_vm_deleted, VMDeletedError, (), id="pool-known-deleted"),
        pytest.param(
            _pool_disconnected, PoolUnavailableError, (POOL_A,), id="pool-disconnected-unavailable"
        ),
        pytest.param(
            _pool_never_known, PoolUnavailableError, (UNKNOWN_POOL,), id="pool-unknown-unavailable"
        ),
        pytest.param(
            _moved_then_new_pool_lost,
            PoolUnavailableError,
            (POOL_B,),
            id="one-of-two-pools-lost-unavailable",
        ),
        pytest.param(
            _moved_unlabelled_then_new_pool_lost,
            PoolUnavailableError,
            (POOL_B,),
            id="moved-to-a-lost-pool-its-node-does-not-name-unavailable",
        ),
        pytest.param(
            _pool_back_without_its_vms,
            PoolUnavailableError,
            (POOL_A,),
            id="pool-back-without-its-vms-unavailable",
        ),
        pytest.param(_deleted_after_a_move, VMDeletedError, (), id="both-pools-known-deleted"),
    ],
)
async def test_a_missing_vm_is_deleted_only_when_every_pool_it_was_in_is_still_known(
    subject: Driver, arrange: object, expected: type[VMNotFoundError], unknown: tuple[str, ...]
) -> None:
    pools = await arrange(subject)  # type: ignore[operator]

    assert await subject.inventory.get_vm(vm_id=VM_1) is None
    verdict = await confirm_absence(subject.inventory, vm_id=VM_1, pools=pools)

    assert type(verdict) is expected
    assert verdict.vm_id == VM_1
    if isinstance(verdict, PoolUnavailableError):
        assert verdict.pools == unknown


async def test_pools_known_answers_for_each_pool_asked(subject: Driver) -> None:
    await subject.disconnect_pool(POOL_B)

    known = await subject.inventory.pools_known(
        pool_ids=[POOL_A.upper(), POOL_B, UNKNOWN_POOL, " "]
    )

    assert known == {POOL_A: HELD, POOL_B: LOST, UNKNOWN_POOL: LOST}


async def test_a_pool_whose_vms_are_loaded_again_is_known_again(subject: Driver) -> None:
    await add_running(subject)
    await subject.disconnect_pool(POOL_A)
    await subject.reconnect_pool(POOL_A, vms_loaded=False)
    without = await subject.inventory.pools_known(pool_ids=[POOL_A])
    missing = await subject.inventory.get_vm(vm_id=VM_1)
    await subject.load_pool_vms(POOL_A)

    assert without == {POOL_A: WITHOUT_VMS} and missing is None
    assert await subject.inventory.pools_known(pool_ids=[POOL_A]) == {POOL_A: HELD}
    assert (await subject.inventory.get_vm(vm_id=VM_1)) is not None


async def test_a_reconnected_pool_brings_its_vms_back(subject: Driver) -> None:
    await add_running(subject)
    await subject.disconnect_pool(POOL_A)
    await subject.reconnect_pool(POOL_A)

    vm = await subject.inventory.get_vm(vm_id=VM_1)

    assert vm.id == VM_1


# -- by name -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("names", "query", "expected"),
    [
        pytest.param(["node-1", "node-10"], "node-1", {VM_1}, id="exact-not-prefix"),
        pytest.param(["Node-1", "node-1"], "node-1", {VM_2}, id="case-sensitive"),
        pytest.param(["web", "web"], "web", {VM_1, VM_2}, id="ambiguous-returns-all"),
        pytest.param(
            ["a.b (1)/c:d", "axb (1)/c:d"], "a.b (1)/c:d", {VM_1}, id="regex-characters-literal"
        ),
        pytest.param(["node-1", "node-2"], "node-3", set(), id="none"),
    ],
)
async def test_find_vms_by_name_matches_the_whole_name_exactly(
    subject: Driver, names: list[str], query: str, expected: set[str]
) -> None:
    for vm_id, name in zip((VM_1, VM_2), names, strict=True):
        await add_running(subject, vm_id, name)

    found = await subject.inventory.find_vms_by_name(name_label=query)

    assert {vm.id for vm in found} == expected


async def test_find_vms_by_name_skips_vms_of_a_disconnected_pool(subject: Driver) -> None:
    await add_running(subject, VM_1, "twin")
    await subject.add_vm(vm_id=VM_2, name_label="twin", pool_id=POOL_B, host_id=HOST_B1)
    await subject.disconnect_pool(POOL_B)

    found = await subject.inventory.find_vms_by_name(name_label="twin")

    assert [vm.id for vm in found] == [VM_1]


# -- snapshot, hosts, pools ------------------------------------------------------------
async def test_snapshot_holds_every_vm_host_and_pool(subject: Driver) -> None:
    await add_running(subject)
    await subject.add_vm(vm_id=VM_2, name_label="node-2", pool_id=POOL_B, host_id=HOST_B1)

    snap = await subject.inventory.snapshot()

    assert set(snap.vms) == {VM_1, VM_2}
    assert snap.vms[VM_2].pool_id == POOL_B
    assert set(snap.hosts) == {HOST_A1, HOST_A2, HOST_B1}
    assert snap.hosts[HOST_A2].pool_id == POOL_A
    assert snap.hosts[HOST_A2].name_label == "host a2"
    assert {p.id: p.name_label for p in snap.pools.values()} == {
        POOL_A: "Pool A",
        POOL_B: "Pool B",
    }


async def test_snapshot_leaves_out_a_disconnected_pool_and_everything_in_it(
    subject: Driver,
) -> None:
    await add_running(subject)
    await subject.add_vm(vm_id=VM_2, name_label="node-2", pool_id=POOL_B, host_id=HOST_B1)
    await subject.disconnect_pool(POOL_B)

    snap = await subject.inventory.snapshot()

    assert set(snap.vms) == {VM_1}
    assert set(snap.hosts) == {HOST_A1, HOST_A2}
    assert set(snap.pools) == {POOL_A}


async def test_get_host_and_get_pool_answer_known_ids_and_none_for_unknown(
    subject: Driver,
) -> None:
    inventory = subject.inventory

    host = await inventory.get_host(host_id=HOST_B1)
    pool = await inventory.get_pool(pool_id=POOL_A)

    assert host is not None
    assert (host.id, host.name_label, host.pool_id) == (HOST_B1, "host b1", POOL_B)
    assert pool is not None
    assert (pool.id, pool.name_label) == (POOL_A, "Pool A")
    assert await inventory.get_host(host_id=UNKNOWN_VM) is None
    assert await inventory.get_pool(pool_id=UNKNOWN_POOL) is None


async def test_host_and_pool_tags_are_as_xo_reports_them_and_follow_at_the_next_snapshot(
    subject: Driver,
) -> None:
    inventory = subject.inventory
    await subject.tag_host(HOST_A1, tags=["k8s.zone=rack-a", "ssd"])
    await subject.tag_pool(POOL_A, tags=["k8s.region=eu-west"])

    snap = await inventory.snapshot()

    assert snap.hosts[HOST_A1].tags == ("k8s.zone=rack-a", "ssd")
    assert snap.hosts[HOST_A2].tags == ()
    assert snap.pools[POOL_A].tags == ("k8s.region=eu-west",)
    await subject.tag_host(HOST_A1, tags=["k8s.zone=rack-b"])
    await subject.tag_pool(POOL_A, tags=[])
    again = await inventory.snapshot()
    assert again.hosts[HOST_A1].tags == ("k8s.zone=rack-b",)
    assert again.pools[POOL_A].tags == ()
    host = await inventory.get_host(host_id=HOST_A1)
    pool = await inventory.get_pool(pool_id=POOL_A)
    assert (host.tags if host else None, pool.tags if pool else None) == (("k8s.zone=rack-b",), ())


async def test_after_a_snapshot_a_disconnected_pools_host_and_pool_are_unknown(
    subject: Driver,
) -> None:
    await subject.disconnect_pool(POOL_B)
    await subject.inventory.snapshot()

    assert await subject.inventory.get_host(host_id=HOST_B1) is None
    assert await subject.inventory.get_pool(pool_id=POOL_B) is None
    assert await subject.inventory.get_pool(pool_id=POOL_A) is not None


# -- the change stream ---------------------------------------------------------------
@pytest.fixture
async def changes(subject: Driver) -> AsyncIterator[AsyncIterator[VMChange]]:
    async with aclosing(subject.inventory.changes()) as stream:  # type: ignore[type-var]
        first = await next_change(stream)
        assert first.kind is ChangeKind.RESYNC
        yield stream


async def test_change_stream_reports_add_migrations_stop_and_removal(
    subject: Driver, changes: AsyncIterator[VMChange]
) -> None:
    await add_running(subject)
    added = await next_change(changes)
    await subject.migrate_vm(VM_1, host_id=HOST_A2)
    moved = await next_change(changes)
    await subject.migrate_vm(VM_1, host_id=HOST_B1)
    moved_pool = await next_change(changes)
    await subject.stop_vm(VM_1)
    stopped = await next_change(changes)
    await subject.delete_vm(VM_1)
    removed = await next_change(changes)

    assert added.kind is ChangeKind.ADDED
    assert added.vm is not None
    assert (added.vm.id, added.vm.container) == (VM_1, HOST_A1)
    assert moved.kind is ChangeKind.UPDATED
    assert moved.vm is not None
    assert (moved.vm.container, moved.vm.pool_id) == (HOST_A2, POOL_A)
    assert moved_pool.kind is ChangeKind.UPDATED
    assert moved_pool.vm is not None
    assert (moved_pool.vm.container, moved_pool.vm.pool_id) == (HOST_B1, POOL_B)
    assert stopped.kind is ChangeKind.UPDATED
    assert stopped.vm is not None
    assert (stopped.vm.power_state, stopped.vm.container) == (PowerState.HALTED, POOL_B)
    assert removed.kind is ChangeKind.REMOVED
    assert removed.vm is not None
    assert removed.vm.id == VM_1


async def test_change_stream_reports_a_retagged_host_and_pool_once_the_caches_hold_them(
    subject: Driver, changes: AsyncIterator[Change]
) -> None:
    inventory = subject.inventory
    assert await inventory.get_host(host_id=HOST_A1) is not None  # cached before the change

    await subject.tag_host(HOST_A1, tags=["k8s.zone=rack-a"])
    retagged = await next_change(changes)
    await subject.tag_pool(POOL_B, tags=["k8s.region=eu"])
    pool_retagged = await next_change(changes)

    assert isinstance(retagged, PlacementChange) and retagged.host is not None
    assert (retagged.host.id, retagged.host.tags, retagged.pool) == (
        HOST_A1,
        ("k8s.zone=rack-a",),
        None,
    )
    host = await inventory.get_host(host_id=HOST_A1)
    assert host is not None and host.tags == ("k8s.zone=rack-a",)
    assert isinstance(pool_retagged, PlacementChange) and pool_retagged.pool is not None
    assert (pool_retagged.pool.id, pool_retagged.pool.tags) == (POOL_B, ("k8s.region=eu",))
    pool = await inventory.get_pool(pool_id=POOL_B)
    assert pool is not None and pool.tags == ("k8s.region=eu",)


async def test_change_stream_reports_a_started_vm_on_its_host(
    subject: Driver, changes: AsyncIterator[VMChange]
) -> None:
    await subject.add_vm(
        vm_id=VM_1, name_label="node-1", pool_id=POOL_A, host_id=HOST_A1, running=False
    )
    await next_change(changes)
    await subject.start_vm(VM_1, host_id=HOST_A2)

    started = await next_change(changes)

    assert started.kind is ChangeKind.UPDATED
    assert started.vm is not None
    assert (started.vm.power_state, started.vm.container) == (PowerState.RUNNING, HOST_A2)


async def test_change_stream_resyncs_after_the_stream_drops_and_keeps_reporting(
    subject: Driver, changes: AsyncIterator[VMChange]
) -> None:
    await subject.drop_streams()
    resync = await next_change(changes)
    await add_running(subject)
    added = await next_change(changes)

    assert resync.kind is ChangeKind.RESYNC
    assert added.kind is ChangeKind.ADDED
    assert added.vm is not None
    assert added.vm.id == VM_1


async def test_a_pool_disconnect_removes_its_vms_and_a_reconnect_adds_them_back(
    subject: Driver, changes: AsyncIterator[VMChange]
) -> None:
    await add_running(subject, VM_1, "node-1")
    await add_running(subject, VM_2, "node-2")
    await subject.add_vm(vm_id=VM_3, name_label="node-3", pool_id=POOL_B, host_id=HOST_B1)
    [await next_change(changes) for _ in range(3)]

    await subject.disconnect_pool(POOL_A)
    removed = [await next_change(changes) for _ in range(2)]
    await subject.reconnect_pool(POOL_A)
    added = [await next_change(changes) for _ in range(2)]

    assert {(c.kind, c.vm.id if c.vm else None) for c in removed} == {
        (ChangeKind.REMOVED, VM_1),
        (ChangeKind.REMOVED, VM_2),
    }
    assert {(c.kind, c.vm.id if c.vm else None) for c in added} == {
        (ChangeKind.ADDED, VM_1),
        (ChangeKind.ADDED, VM_2),
    }


# -- subtleties both subjects must share -------------------------------------------------
async def test_moving_a_halted_vm_to_another_pool_keeps_its_container_the_pool(
    subject: Driver, changes: AsyncIterator[VMChange]
) -> None:
    await subject.add_vm(
        vm_id=VM_1, name_label="node-1", pool_id=POOL_A, host_id=HOST_A1, running=False
    )
    await next_change(changes)
    await subject.migrate_vm(VM_1, host_id=HOST_B1)

    moved = await next_change(changes)
    vm = await subject.inventory.get_vm(vm_id=VM_1)

    assert moved.vm is not None
    assert (moved.vm.pool_id, moved.vm.container) == (POOL_B, POOL_B)
    assert (vm.pool_id, vm.container) == (POOL_B, POOL_B)


async def test_an_update_that_changes_nothing_is_not_streamed(
    subject: Driver, changes: AsyncIterator[VMChange]
) -> None:
    await add_running(subject)
    await next_change(changes)
    await subject.stop_vm(VM_1)
    await next_change(changes)
    await subject.stop_vm(VM_1)  # already halted: XO sends nothing
    await subject.delete_vm(VM_1)

    following = await next_change(changes)

    assert following.kind is ChangeKind.REMOVED


# -- XO's servers ------------------------------------------------------------------
async def test_servers_say_which_pools_xo_hears_from_now(subject: Driver) -> None:
    await add_running(subject)
    await subject.disconnect_pool(POOL_B)
    await subject.events_failing(POOL_A, "EVENTS_LOST")
    failing = await subject.inventory.servers()
    await subject.events_failing(POOL_A, None)
    back = await subject.inventory.servers()

    assert failing is not None and back is not None
    assert not pool_current(failing, POOL_A) and pool_current(back, POOL_A)
    assert not pool_current(back, POOL_B) and len(lost_servers(back)) == 1
    assert await subject.inventory.get_vm(vm_id=VM_1) is not None  # served all along


# -- the admin view ------------------------------------------------------------------
async def test_admin_view_says_whether_the_credentials_see_everything(subject: Driver) -> None:
    assert await subject.inventory.admin_view() is True
    await subject.set_admin(False)
    assert await subject.inventory.admin_view() is False
    await subject.set_admin(True)
    assert await subject.inventory.admin_view() is True
