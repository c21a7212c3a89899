"""One XO snapshot for the label pass and the address pass that run together.

Both periodic passes (``cloud-node-label-sync`` and the cloud-node address
sync) run every ``--node-status-update-frequency`` and start together, and
each read the whole inventory: at rest, parsing every VM twice per period was
most of the CCM's CPU. :class:`SharedSnapshot` is the Inventory port in front
of the real one: ``snapshot()`` shares one in flight, and answers from one
taken at most ``max_age`` seconds ago; every other call goes straight through
(lookups by id are never served from it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence

from domain.model import VM, Host, InventorySnapshot, Pool, VMChange
from domain.ports import Clock, Inventory

#: Seconds a snapshot answers the other pass of the same period.
MAX_AGE = 2.0


class SharedSnapshot:
    """Implements ``domain.ports.Inventory`` over ``inventory``, sharing ``snapshot()``."""

    def __init__(self, *, inventory: Inventory, clock: Clock, max_age: float = MAX_AGE) -> None:
        self._inventory = inventory
        self._clock = clock
        self._max_age = max_age
        self._last: tuple[float, InventorySnapshot] | None = None
        self._pending: asyncio.Future[InventorySnapshot] | None = None

    async def snapshot(self) -> InventorySnapshot:
        if self._last is not None and self._clock.monotonic() - self._last[0] <= self._max_age:
            return self._last[1]
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._take())
        return await asyncio.shield(self._pending)

    async def _take(self) -> InventorySnapshot:
        started = self._clock.monotonic()
        try:
            snapshot = await self._inventory.snapshot()
        finally:
            self._pending = None
        self._last = (started, snapshot)
        return snapshot

    async def get_vm(self, *, vm_id: str, confirm_pools: Collection[str] = ()) -> VM:
        return await self._inventory.get_vm(vm_id=vm_id, confirm_pools=confirm_pools)

    async def find_vms_by_name(self, *, name_label: str) -> Sequence[VM]:
        return await self._inventory.find_vms_by_name(name_label=name_label)

    async def get_host(self, *, host_id: str) -> Host | None:
        return await self._inventory.get_host(host_id=host_id)

    async def get_pool(self, *, pool_id: str) -> Pool | None:
        return await self._inventory.get_pool(pool_id=pool_id)

    def changes(self) -> AsyncIterator[VMChange]:
        return self._inventory.changes()
