"""An answer for one XO object must be about that object (found by the services fuzz).

Over a real socket, the loopback canned server of ``tests.fuzz.canned``
answering each route with chosen bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from domain.errors import ProtocolError
from tests.fuzz.canned import Canned, CannedXO
from tests.fuzz.support import inventory_for, typed

VM_ID = "6d1c9f3e-2a4b-4c5d-8e7f-0a1b2c3d4e5f"
POOL_ID = "0b6f3a9e-7f0b-4c8e-9d21-8a3c1e54c011"
HOST_ID = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"


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
