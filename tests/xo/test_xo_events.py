"""The change stream over server-sent events: watchdog, reconnects, polling fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from adapters.xenorchestra import StreamPolicy, XOHttpClient, XOInventory
from adapters.xenorchestra.auth import Credentials
from adapters.xenorchestra.changes import diff_vms
from domain.model import VM, ChangeKind, PlacementChange, PowerState, VMChange
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import (
    TOKEN,
    ChangeCollector,
    World,
    collecting,
    make_inventory,
    replayed,
)

VM_1 = "f07ab729-c0e8-721c-45ec-f11276377030"
VM_2 = "3e1c9a0d-52b4-4f7e-8a6c-1d2e3f4a5b6c"


def _kinds(changes: list[VMChange]) -> list[tuple[ChangeKind, str | None]]:
    return [(c.kind, c.vm.id if c.vm else None) for c in changes]


@pytest.fixture
async def stream(inventory: XOInventory) -> AsyncIterator[ChangeCollector]:
    async with collecting(inventory.changes()) as changes:
        assert (await changes.next()).kind is ChangeKind.RESYNC
        yield changes


@pytest.mark.parametrize("compact", [False, True], ids=["event-space-x", "event-colon-x"])
async def test_both_frame_spellings_are_understood(
    xo: FakeXOServer, world: World, inventory: XOInventory, compact: bool
) -> None:
    xo.hub.configure(compact=compact)

    async with collecting(inventory.changes()) as changes:
        first = await changes.next()
        xo.state.add_vm(name_label="n1", vm_id=VM_1, pool_id=world.pool_a)
        added = await changes.next()

    assert first.kind is ChangeKind.RESYNC
    assert _kinds([added]) == [(ChangeKind.ADDED, VM_1)]


async def test_updates_of_fields_the_ccm_does_not_read_are_not_streamed(
    xo: FakeXOServer, world: World, stream: ChangeCollector
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_1, pool_id=world.pool_a)
    await stream.next()
    xo.state.patch_vm(VM_1, fields={"name_description": "changed", "auto_poweron": True})
    xo.state.rename_vm(VM_1, name_label="n1-renamed")

    change = await stream.next()

    assert change.kind is ChangeKind.UPDATED
    assert change.vm is not None
    assert change.vm.name_label == "n1-renamed"


async def test_resize_and_tags_are_streamed_as_updates(
    xo: FakeXOServer, world: World, stream: ChangeCollector
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_1, pool_id=world.pool_a)
    await stream.next()
    xo.state.resize_vm(VM_1, cpus=8, memory=16 * 1024**3)
    resized = await stream.next()
    xo.state.tag_vm(VM_1, tags=["gpu"])
    tagged = await stream.next()

    assert resized.vm is not None
    assert (resized.vm.cpus, resized.vm.memory_bytes) == (8, 16 * 1024**3)
    assert tagged.vm is not None
    assert tagged.vm.tags == ("gpu",)


async def test_a_silent_stream_is_declared_dead_and_reconnected(
    xo: FakeXOServer, world: World
) -> None:
    xo.faults.set(mute_pings=True)
    policy = StreamPolicy(ping_timeout=0.3, reconnect_initial=0.01, reconnect_max=0.05)

    async with (
        make_inventory(xo, stream=policy) as inv,
        collecting(inv.changes()) as changes,
    ):
        first = await changes.next()
        second = await changes.next(within=3)
        xo.faults.clear()
        xo.state.add_vm(name_label="n1", vm_id=VM_1, pool_id=world.pool_a)
        added = await changes.next()

    assert (first.kind, second.kind) == (ChangeKind.RESYNC, ChangeKind.RESYNC)
    assert xo.requests.snapshot()["GET /events"] == 2
    assert _kinds([added]) == [(ChangeKind.ADDED, VM_1)]


async def test_pings_keep_a_quiet_stream_alive(xo: FakeXOServer, world: World) -> None:
    policy = StreamPolicy(ping_timeout=0.5, reconnect_initial=0.01)

    async with (
        make_inventory(xo, stream=policy) as inv,
        collecting(inv.changes()) as changes,
    ):
        await changes.next()
        with pytest.raises(TimeoutError):
            await changes.next(within=0.8)  # pings every 0.2 s: no reconnect

    assert xo.requests.snapshot()["GET /events"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"fail_next": 2, "endpoint": "GET /events"}, id="events-503"),
        pytest.param(
            {"fail_next": 1, "endpoint": "POST /events/{id}/subscriptions"}, id="subscribe-503"
        ),
    ],
)
async def test_a_failed_connect_is_retried_and_then_resyncs(
    xo: FakeXOServer, world: World, inventory: XOInventory, fault: dict[str, object]
) -> None:
    xo.faults.set(**fault)

    async with collecting(inventory.changes()) as changes:
        first = await changes.next()

    assert first.kind is ChangeKind.RESYNC


async def test_a_revoked_token_keeps_the_stream_retrying_until_it_is_back(
    xo: FakeXOServer, world: World, stream: ChangeCollector
) -> None:
    xo.auth.revoke_token(TOKEN)
    xo.hub.drop_all()
    with pytest.raises(TimeoutError):
        await stream.next(within=0.3)
    xo.auth.add_token(token=TOKEN)

    resync = await stream.next()

    assert resync.kind is ChangeKind.RESYNC
    assert xo.requests.snapshot()["GET /events"] >= 3


async def test_host_and_pool_events_keep_the_caches_fresh(
    xo: FakeXOServer, world: World, inventory: XOInventory, stream: ChangeCollector
) -> None:
    await inventory.snapshot()
    new_host = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
    xo.state.add_host(pool_id=world.pool_a, name_label="late host", host_id=new_host)
    xo.state.disconnect_pool(world.pool_b)
    xo.state.add_vm(name_label="marker", vm_id=VM_1, pool_id=world.pool_a)
    await stream.next()  # the marker's add comes after the host and pool frames
    xo.requests.reset()

    host = await inventory.get_host(host_id=new_host)
    gone_host = await inventory.get_host(host_id=world.host_b1)
    gone_pool = await inventory.get_pool(pool_id=world.pool_b)

    assert host is not None
    assert host.name_label == "late host"
    assert (gone_host, gone_pool) == (None, None)
    # the new host came from the cache; the gone ones were evicted, so XO was asked (404)
    assert xo.requests.snapshot() == {"GET /hosts/{id}": 1, "GET /pools/{id}": 1}


class _HeldHostAnswers(httpx.AsyncHTTPTransport):
    """The network to the fake XO, where an answer for one host is read as XO sends it,
    then held until the test releases it (as a slow network would)."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if "/hosts/" in request.url.path:
            body = await response.aread()  # decoded: gzip undone
            self.answered.set()
            await self.release.wait()
            return replayed(response, body)
        return response


async def test_a_host_answer_overtaken_by_its_event_never_replaces_it_in_the_cache(
    xo: FakeXOServer, world: World
) -> None:
    xo.state.tag_host(world.host_a1, tags=["k8s.zone=old"])
    network = _HeldHostAnswers()
    client = XOHttpClient(
        url=xo.url, credentials=Credentials(token=SecretStr(TOKEN)), transport=network
    )
    async with XOInventory(client) as inventory, collecting(inventory.changes()) as changes:
        await changes.next()  # RESYNC: subscribed
        asked = asyncio.create_task(inventory.get_host(host_id=world.host_a1))
        await network.answered.wait()  # XO answered "old"; the answer is on its way
        xo.state.tag_host(world.host_a1, tags=["k8s.zone=new"])
        retagged = await changes.next()
        network.release.set()
        answered = await asyncio.wait_for(asyncio.shield(asked), 5)
        cached = await inventory.get_host(host_id=world.host_a1)

    assert isinstance(retagged, PlacementChange)
    assert answered is not None and answered.tags == ("k8s.zone=new",)
    assert cached is not None and cached.tags == ("k8s.zone=new",)


# -- polling fallback ---------------------------------------------------------------
async def test_without_an_events_endpoint_the_stream_polls_and_diffs(
    xo: FakeXOServer, world: World, stream_policy: StreamPolicy
) -> None:
    xo.faults.set(events_enabled=False)
    xo.state.add_vm(name_label="n1", vm_id=VM_1, pool_id=world.pool_a)

    async with (
        make_inventory(xo, stream=stream_policy) as inv,
        collecting(inv.changes()) as changes,
    ):
        first = await changes.next()
        xo.state.add_vm(name_label="n2", vm_id=VM_2, pool_id=world.pool_a)
        added = await changes.next()
        xo.state.stop_vm(VM_1)
        stopped = await changes.next()
        xo.state.delete_vm(VM_2)
        removed = await changes.next()

    assert first.kind is ChangeKind.RESYNC
    assert _kinds([added, stopped, removed]) == [
        (ChangeKind.ADDED, VM_2),
        (ChangeKind.UPDATED, VM_1),
        (ChangeKind.REMOVED, VM_2),
    ]
    assert stopped.vm is not None
    assert stopped.vm.power_state is PowerState.HALTED
    assert xo.requests.snapshot()["GET /events"] == 1  # asked once, then polled


async def test_polling_reports_retagged_hosts_and_pools_too(
    xo: FakeXOServer, world: World, stream_policy: StreamPolicy
) -> None:
    xo.faults.set(events_enabled=False)

    async with (
        make_inventory(xo, stream=stream_policy) as inv,
        collecting(inv.changes()) as changes,
    ):
        await changes.next()  # RESYNC
        xo.state.tag_host(world.host_a2, tags=["k8s.zone=rack-b"])
        xo.state.tag_pool(world.pool_b, tags=["k8s.region=eu"])
        seen = [await changes.next(), await changes.next()]
        host = await inv.get_host(host_id=world.host_a2)

    assert all(isinstance(c, PlacementChange) for c in seen)
    retagged = {(c.host or c.pool).id: (c.host or c.pool).tags for c in seen}  # type: ignore[union-attr]
    assert retagged == {world.host_a2: ("k8s.zone=rack-b",), world.pool_b: ("k8s.region=eu",)}
    assert host is not None and host.tags == ("k8s.zone=rack-b",)


@pytest.fixture
def stream_policy() -> StreamPolicy:
    return StreamPolicy(ping_timeout=1.0, reconnect_initial=0.01, poll_interval=0.05)


def _vm(vm_id: str, container: str = "h1") -> VM:
    return VM(
        id=vm_id,
        name_label=vm_id,
        power_state=PowerState.RUNNING,
        pool_id="p",
        container=container,
        cpus=1,
        memory_bytes=1,
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({}, {}, [], id="nothing"),
        pytest.param({}, {"a": _vm("a")}, [(ChangeKind.ADDED, "a")], id="added"),
        pytest.param({"a": _vm("a")}, {}, [(ChangeKind.REMOVED, "a")], id="removed"),
        pytest.param(
            {"a": _vm("a")}, {"a": _vm("a", "h2")}, [(ChangeKind.UPDATED, "a")], id="updated"
        ),
        pytest.param({"a": _vm("a")}, {"a": _vm("a")}, [], id="unchanged"),
    ],
)
def test_diff_vms_turns_two_listings_into_changes(
    before: dict[str, VM], after: dict[str, VM], expected: list[tuple[ChangeKind, str]]
) -> None:
    assert _kinds(diff_vms(before, after)) == expected


async def test_closing_the_inventory_ends_a_running_change_stream(
    xo: FakeXOServer, world: World
) -> None:
    inv = make_inventory(xo)
    changes = inv.changes()
    first = await anext(changes)

    await inv.aclose()
    xo.hub.drop_all()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(changes), 5)
    assert first.kind is ChangeKind.RESYNC
