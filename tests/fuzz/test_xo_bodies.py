"""Whatever XO (or a proxy) answers, the XO adapter returns a domain value or raises
one of its own error types (``domain.errors.InventoryError`` and kin), with a one-line
message: never a ``KeyError``, ``RecursionError``, ``OverflowError`` or the HTTP
library's ``DecodingError``.

First the parsers alone on any decoded JSON; then every read of the port over a
real socket, each route answering its own fuzzed status, headers and body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from adapters.xenorchestra.parsing import parse_host, parse_list, parse_pool, parse_vm
from domain.errors import InventoryError, ProtocolError
from domain.model import VM, Host, InventorySnapshot, Pool, PoolPresence
from tests.fuzz.canned import Canned, CannedXO
from tests.fuzz.strategies import answers, documents, render
from tests.fuzz.support import inventory_for, typed

VM_ID = "6d1c9f3e-2a4b-4c5d-8e7f-0a1b2c3d4e5f"
POOL_ID = "0b6f3a9e-7f0b-4c8e-9d21-8a3c1e54c011"
HOST_ID = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
ROUTES = ("vms", "vm", "hosts", "host", "pools", "pool")

PARSERS = (parse_vm, parse_host, parse_pool, parse_list)


def _decoded(body: bytes) -> Any:
    """What the HTTP client hands the parsers, or None when it refuses the body."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@given(documents.map(render), st.sampled_from(PARSERS))
@example(b'{"id": "v", "power_state": "Running", "$pool": "p", "CPUs": {"max": 1e400}}', parse_vm)
@example(b'{"id": "v", "power_state": "Running", "$pool": "p", "memory": {"size": NaN}}', parse_vm)
def test_the_parsers_raise_only_protocol_errors(body: bytes, parser: Any) -> None:
    data = _decoded(body)
    try:
        parsed = parser(data, endpoint="GET /fuzz")
    except ProtocolError as err:
        parsed = err
    if isinstance(parsed, ProtocolError):
        assert "GET /fuzz" in str(parsed)
        assert "\n" not in str(parsed)
    else:
        assert isinstance(parsed, VM | Host | Pool | list)


@given(st.fixed_dictionaries({route: answers() for route in ROUTES}))
@example(
    {
        **{r: Canned() for r in ROUTES},
        "vm": Canned(headers=(("Content-Encoding", "gzip"),), body=b"{}"),
    }
)
@example({**{r: Canned() for r in ROUTES}, "vms": Canned(body=b"[" * 100_000 + b"]" * 100_000)})
@example(
    {
        **{r: Canned() for r in ROUTES},
        "vm": Canned(
            body=b'{"id": "' + VM_ID.encode() + b'", "power_state": "Running", '
            b'"$pool": "' + POOL_ID.encode() + b'", "CPUs": {"max": 1e400}}'
        ),
    }
)
@example(  # the pool there, its control domains' route 404 (an older XO): held
    {**{r: Canned() for r in ROUTES}, "pool": Canned(body=b'{"id": "%s"}' % POOL_ID.encode())}
)
async def test_every_read_of_the_port_gives_a_value_or_an_inventory_error(
    routes: dict[str, Canned],
) -> None:
    async with CannedXO(routes=routes) as xo, inventory_for(xo.url) as inventory:
        results = [
            await typed(inventory.check(deadline=0.1), InventoryError),
            await typed(inventory.get_vm(vm_id=VM_ID), InventoryError),
            await typed(inventory.pools_known(pool_ids=[POOL_ID]), InventoryError),
            await typed(inventory.find_vms_by_name(name_label="node-1"), InventoryError),
            await typed(inventory.get_host(host_id=HOST_ID), InventoryError),
            await typed(inventory.get_pool(pool_id=POOL_ID), InventoryError),
            await typed(inventory.snapshot(), InventoryError),
        ]
    check, vm, known, named, host, pool, snap = results
    assert check is None or isinstance(check, InventoryError)
    assert isinstance(vm, VM | InventoryError) or vm is None
    assert isinstance(known, InventoryError) or known in [{POOL_ID: p} for p in PoolPresence]
    assert isinstance(named, list | InventoryError)
    assert isinstance(host, Host | InventoryError) or host is None
    assert isinstance(pool, Pool | InventoryError) or pool is None
    assert isinstance(snap, InventorySnapshot | InventoryError)


OTHER = "99999999-8888-4777-8666-555555555555"


async def test_an_answer_about_another_object_than_asked_is_a_protocol_error() -> None:
    """Found by the services fuzz: ``GET /pools/A`` answered with pool B's object made
    pool A "known", so a VM's 404 counted as a deletion. The same holds for a VM
    (registration would take another VM's identity) and a host."""
    vm = b'{"id": "%s", "power_state": "Running", "$pool": "%s"}' % (OTHER.encode(), OTHER.encode())
    routes = {
        "vm": Canned(body=vm),
        "host": Canned(body=b'{"id": "%s", "$pool": "%s"}' % (OTHER.encode(), OTHER.encode())),
        "pool": Canned(body=b'{"id": "%s"}' % OTHER.encode()),
    }
    async with CannedXO(routes=routes) as xo, inventory_for(xo.url) as inventory:
        calls: list[tuple[Callable[[], Awaitable[object]], str]] = [
            (lambda: inventory.get_vm(vm_id=VM_ID), "VM"),
            (lambda: inventory.get_host(host_id=HOST_ID), "host"),
            (lambda: inventory.get_pool(pool_id=POOL_ID), "pool"),
        ]
        for call, what in calls:
            error = await typed(call(), ProtocolError)
            assert isinstance(error, ProtocolError), f"{what}: {error!r}"
            assert OTHER in str(error)
