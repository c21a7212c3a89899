"""Whatever XO (or a proxy) answers, the adapter raises ProtocolError, never crashes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.xenorchestra import XOInventory
from adapters.xenorchestra.auth import Credentials
from adapters.xenorchestra.http import XOHttpClient
from adapters.xenorchestra.parsing import exact_filter, parse_host, parse_pool, parse_vm
from domain.errors import ProtocolError
from domain.model import PowerState
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import (
    TOKEN,
    RecordingObserver,
    World,
    make_inventory,
)

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"

Call = Callable[[XOInventory], Awaitable[object]]


async def _snapshot(inv: XOInventory) -> object:
    return await inv.snapshot()


async def _get_vm(inv: XOInventory) -> object:
    return await inv.get_vm(vm_id=VM_ID)


async def _find(inv: XOInventory) -> object:
    return await inv.find_vms_by_name(name_label="n1")


async def _get_host(inv: XOInventory) -> object:
    return await inv.get_host(host_id="00000000-0000-4000-8000-000000000000")


@pytest.mark.parametrize("garbage", ["html", "truncated", "shape", "no-id"])
@pytest.mark.parametrize(
    ("call", "endpoint"),
    [
        pytest.param(_snapshot, "GET /", id="snapshot"),
        pytest.param(_get_vm, "GET /vms/{id}", id="get-vm"),
        pytest.param(_find, "GET /vms", id="find-by-name"),
        pytest.param(_get_host, "GET /hosts/{id}", id="get-host"),
    ],
)
async def test_a_malformed_answer_is_a_protocol_error_naming_the_endpoint(
    xo: FakeXOServer, world: World, garbage: str, call: Call, endpoint: str
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    xo.state.add_host(
        pool_id=world.pool_a, name_label="h", host_id="00000000-0000-4000-8000-000000000000"
    )
    xo.faults.set(garbage=garbage)
    observer = RecordingObserver()

    async with make_inventory(xo, observer=observer) as inv:
        with pytest.raises(ProtocolError) as caught:
            await call(inv)

    assert endpoint in str(caught.value)
    assert sum(xo.requests.snapshot().values()) <= 3  # never retried


@pytest.mark.parametrize("garbage", ["html", "truncated", "shape"])
async def test_the_startup_check_reports_a_malformed_answer(xo: FakeXOServer, garbage: str) -> None:
    xo.faults.set(garbage=garbage)

    async with make_inventory(xo) as inv:
        with pytest.raises(ProtocolError, match="GET /vms"):
            await inv.check()


def _vm(**overrides: Any) -> dict[str, Any]:
    vm: dict[str, Any] = {
        "id": VM_ID.upper(),
        "name_label": "n1",
        "power_state": "Running",
        "$pool": "P1",
        "$container": "H1",
        "CPUs": {"max": 2},
        "memory": {"size": 4294967296},
        "mainIpAddress": "10.0.0.5",
        "addresses": {"0/ipv4/0": "10.0.0.5"},
        "tags": ["a"],
    }
    vm.update(overrides)
    return {k: v for k, v in vm.items() if v is not ...}


def test_a_picked_vm_becomes_a_domain_vm_with_lower_case_ids() -> None:
    vm = parse_vm(_vm(), endpoint="GET /vms")

    assert (vm.id, vm.pool_id, vm.container) == (VM_ID, "p1", "h1")
    assert (vm.cpus, vm.memory_bytes, vm.power_state) == (2, 4294967296, PowerState.RUNNING)
    assert (vm.main_ip_address, dict(vm.addresses), vm.tags) == (
        "10.0.0.5",
        {"0/ipv4/0": "10.0.0.5"},
        ("a",),
    )


def test_optional_vm_fields_default_when_xo_omits_them() -> None:
    vm = parse_vm(
        _vm(mainIpAddress=..., addresses=..., tags=..., CPUs=..., memory=..., name_label=...),
        endpoint="GET /vms",
    )

    assert (vm.main_ip_address, dict(vm.addresses), vm.tags) == (None, {}, ())
    assert (vm.cpus, vm.memory_bytes, vm.name_label) == (0, 0, "")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param(["not", "an", "object"], "expected a VM object", id="not-an-object"),
        pytest.param(_vm(id=...), "has no 'id'", id="missing-id"),
        pytest.param(_vm(id=""), "empty 'id'", id="empty-id"),
        pytest.param(_vm(id=42), "not a string", id="numeric-id"),
        pytest.param(_vm(power_state="Exploded"), "unknown power_state", id="unknown-state"),
        pytest.param(_vm(power_state=...), "has no 'power_state'", id="missing-state"),
        pytest.param(_vm(**{"$pool": ...}), "has no '\\$pool'", id="missing-pool"),
        pytest.param(_vm(CPUs=[2]), "'CPUs' is not an object", id="cpus-not-object"),
        pytest.param(_vm(CPUs={"max": "2"}), "CPUs.max' is not a number", id="cpus-string"),
        pytest.param(_vm(memory={"size": True}), "memory.size' is not a number", id="bool-mem"),
        pytest.param(_vm(addresses=["10.0.0.1"]), "'addresses'", id="addresses-list"),
        pytest.param(_vm(addresses={"0/ipv4/0": 1}), "'addresses'", id="address-number"),
        pytest.param(_vm(tags="prod"), "'tags'", id="tags-string"),
        pytest.param(_vm(mainIpAddress=5), "not a string", id="main-ip-number"),
    ],
)
def test_a_malformed_vm_is_a_protocol_error(data: Any, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as caught:
        parse_vm(data, endpoint="GET /vms/{id}")

    assert "GET /vms/{id}" in str(caught.value)


@pytest.mark.parametrize(
    ("parse", "data"),
    [
        pytest.param(parse_host, {"name_label": "h"}, id="host-without-id"),
        pytest.param(parse_pool, "pool", id="pool-not-object"),
        pytest.param(parse_pool, {"id": "p", "name_label": ["x"]}, id="pool-name-list"),
        pytest.param(parse_host, {"id": "h", "tags": "k8s.zone=a"}, id="host-tags-string"),
        pytest.param(parse_pool, {"id": "p", "tags": [1]}, id="pool-tags-numbers"),
    ],
)
def test_malformed_hosts_and_pools_are_protocol_errors(
    parse: Callable[..., object], data: Any
) -> None:
    with pytest.raises(ProtocolError):
        parse(data, endpoint="GET /hosts")


def test_host_and_pool_tags_are_read_and_absent_ones_are_none() -> None:
    host = parse_host({"id": "H", "$pool": "P", "tags": ["k8s.zone=a"]}, endpoint="GET /hosts")
    pool = parse_pool({"id": "P", "name_label": "p"}, endpoint="GET /pools")

    assert (host.id, host.pool_id, host.tags) == ("h", "p", ("k8s.zone=a",))
    assert pool.tags == ()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("node-1", r"name_label:/^node\-1$/", id="dash"),
        pytest.param("a.b (1)", r"name_label:/^a\.b \(1\)$/", id="dots-spaces-parens"),
        pytest.param("x/y", r"name_label:/^x\/y$/", id="slash-ends-no-literal"),
        pytest.param("c:\\d", r"name_label:/^c:\\d$/", id="backslash"),
    ],
)
def test_the_name_filter_is_an_escaped_anchored_regex(name: str, expected: str) -> None:
    assert exact_filter("name_label", name) == expected


class _HungHostList(httpx.AsyncHTTPTransport):
    """The network to the fake XO, where the host list's answer never comes back."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/hosts"):
            await asyncio.Event().wait()
        return await super().handle_async_request(request)


async def test_a_failed_snapshot_leaves_no_request_behind(xo: FakeXOServer, world: World) -> None:
    """The flake of ``test_only_an_answer_from_xo_moves_the_last_success_time``, made
    certain: the VM list fails while the host list is still in flight; the snapshot
    must not return with that request still running (and measured later)."""
    xo.faults.set(garbage="shape", endpoint="GET /vms")
    client = XOHttpClient(
        url=xo.url, credentials=Credentials(token=SecretStr(TOKEN)), transport=_HungHostList()
    )
    async with XOInventory(client) as inventory:
        with pytest.raises(ProtocolError, match="GET /vms"):
            await inventory.snapshot()

        in_flight = [t for t in asyncio.all_tasks() if "XOInventory" in repr(t.get_coro())]
        assert in_flight == []
