"""Xen Orchestra in memory: VMs, hosts, pools, a change stream, pool outages."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import replace

from domain.errors import InventoryError
from domain.model import (
    VM,
    Change,
    ChangeKind,
    Host,
    InventorySnapshot,
    PlacementChange,
    Pool,
    PoolPresence,
    PowerState,
    VMChange,
    XOServer,
)


class InMemoryInventory:
    """Implements the Inventory port the way XO behaves.

    Like XO, a disconnected pool's VMs, hosts and the pool itself disappear
    (with ``remove`` changes) until it reconnects. ``requests`` counts calls
    per method, as the fake XO server counts HTTP requests. ``fail_with``
    makes every read raise that error (XO down).
    """

    def __init__(self) -> None:
        self.vms: dict[str, VM] = {}
        self.hosts: dict[str, Host] = {}
        self.pools: dict[str, Pool] = {}
        self.disconnected: set[str] = set()
        #: pools XO has again without their VMs (its fetch of them failed)
        self.unloaded: set[str] = set()
        #: the pool each deleted VM was last in (``pools_seen``)
        self.deleted_pools: dict[str, str] = {}
        #: per pool, the error XO shows on its server (its event loop failing: the
        #: pool's objects served are its last ones)
        self.server_errors: dict[str, str] = {}
        #: per pool, the status its server shows instead of XO's connection's own
        #: (``connecting`` while XO reconnects, objects still served)
        self.server_status: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.fail_with: InventoryError | None = None
        #: whether the credentials are an admin's (``admin_view``)
        self.admin = True
        self._subscribers: list[asyncio.Queue[Change]] = []
        self._last_snapshot: InventorySnapshot | None = None

    # -- the port ---------------------------------------------------------
    def _read(self, what: str) -> None:
        self.requests[what] += 1
        if self.fail_with is not None:
            raise self.fail_with

    def _visible_vm(self, vm_id: str) -> VM | None:
        vm = self.vms.get(vm_id)
        hidden = vm is None or vm.pool_id in self.disconnected or vm.pool_id in self.unloaded
        return None if hidden else vm

    async def get_vm(self, *, vm_id: str) -> VM | None:
        self._read("get_vm")
        return self._visible_vm(vm_id.strip().lower())

    async def pools_known(self, *, pool_ids: Collection[str]) -> Mapping[str, PoolPresence]:
        self._read("pools_known")
        keys = {p.strip().lower() for p in pool_ids if p.strip()}
        # as XOInventory: a pool XO holds with its VMs
        return {p: self._presence(p) for p in sorted(keys)}

    def _presence(self, pool_id: str) -> PoolPresence:
        if pool_id not in self.pools or pool_id in self.disconnected:
            return PoolPresence.LOST
        return PoolPresence.WITHOUT_VMS if pool_id in self.unloaded else PoolPresence.HELD

    def pools_seen(self, *, vm_id: str) -> frozenset[str]:
        key = vm_id.strip().lower()
        vm = self.vms.get(key)
        pool = vm.pool_id if vm is not None else self.deleted_pools.get(key)
        return frozenset({pool}) if pool else frozenset()

    async def servers(self) -> Sequence[XOServer] | None:
        self._read("servers")
        servers = []
        for pool in self.pools.values():
            lost = "disconnected" if pool.id in self.disconnected else "connected"
            status = self.server_status.get(pool.id, lost)
            servers.append(
                XOServer(
                    label=pool.name_label,
                    enabled=True,
                    status=status,
                    pool_id=pool.id if status == "connected" else "",
                    error=self.server_errors.get(pool.id, ""),
                )
            )
        return servers

    async def find_vms_by_name(self, *, name_label: str) -> Sequence[VM]:
        self._read("find_vms_by_name")
        return [
            vm
            for vm in self.vms.values()
            if vm.name_label == name_label and self._visible_vm(vm.id)
        ]

    async def get_host(self, *, host_id: str) -> Host | None:
        self._read("get_host")
        host = self.hosts.get(host_id.lower())
        return host if host is not None and host.pool_id not in self.disconnected else None

    async def get_pool(self, *, pool_id: str) -> Pool | None:
        self._read("get_pool")
        pool_id = pool_id.lower()
        return None if pool_id in self.disconnected else self.pools.get(pool_id)

    async def admin_view(self) -> bool:
        self._read("admin_view")
        return self.admin

    async def snapshot(self) -> InventorySnapshot:
        self._read("snapshot")
        taken = InventorySnapshot(
            vms={i: v for i, v in self.vms.items() if v.pool_id not in self.disconnected},
            hosts={i: h for i, h in self.hosts.items() if h.pool_id not in self.disconnected},
            pools={i: p for i, p in self.pools.items() if i not in self.disconnected},
        )
        last = self._last_snapshot
        if last is not None:  # as the XO adapter does: unchanged lists, the very same values
            taken = InventorySnapshot(
                vms=last.vms if last.vms == taken.vms else taken.vms,
                hosts=last.hosts if last.hosts == taken.hosts else taken.hosts,
                pools=last.pools if last.pools == taken.pools else taken.pools,
            )
        self._last_snapshot = taken
        return taken

    async def changes(self) -> AsyncIterator[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            yield VMChange(ChangeKind.RESYNC)
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    # -- driving it ---------------------------------------------------------
    def _publish(self, kind: ChangeKind, vm: VM | None) -> None:
        if vm is not None and vm.pool_id in self.disconnected:
            return
        for queue in self._subscribers:
            queue.put_nowait(VMChange(kind, vm))

    def add_pool(self, pool: Pool) -> Pool:
        self.pools[pool.id] = pool
        return pool

    def add_host(self, host: Host) -> Host:
        self.hosts[host.id] = host
        return host

    def tag_host(self, host_id: str, *, tags: Sequence[str]) -> Host:
        """Replace the host's tags, as XO's tag editor does (announced when they change)."""
        old = self.hosts[host_id]
        host = self.hosts[host_id] = replace(old, tags=tuple(tags))
        if host != old and host.pool_id not in self.disconnected:
            self._announce(PlacementChange(host=host))
        return host

    def tag_pool(self, pool_id: str, *, tags: Sequence[str]) -> Pool:
        """Replace the pool's tags (announced when they change)."""
        old = self.pools[pool_id]
        pool = self.pools[pool_id] = replace(old, tags=tuple(tags))
        if pool != old and pool_id not in self.disconnected:
            self._announce(PlacementChange(pool=pool))
        return pool

    def _announce(self, change: Change) -> None:
        for queue in self._subscribers:
            queue.put_nowait(change)

    def add_vm(self, vm: VM) -> VM:
        self.vms[vm.id] = vm
        self._publish(ChangeKind.ADDED, vm)
        return vm

    def update_vm(self, vm_id: str, **fields: object) -> VM:
        """Replace fields of a VM (any VM attribute) and publish an update.

        Like XO with a field list, nothing is published when nothing changed.
        """
        old = self.vms[vm_id]
        vm = replace(old, **fields)  # type: ignore[arg-type]
        self.vms[vm_id] = vm
        if vm != old:
            self._publish(ChangeKind.UPDATED, vm)
        return vm

    def delete_vm(self, vm_id: str) -> VM:
        vm = self.vms.pop(vm_id)
        self.deleted_pools[vm.id] = vm.pool_id
        self._publish(ChangeKind.REMOVED, vm)
        return vm

    def migrate_vm(self, vm_id: str, *, host_id: str) -> VM:
        """Migrate to ``host_id`` (and to its pool, when it is in another).

        A halted VM resides nowhere: its ``$container`` becomes the new pool.
        """
        host = self.hosts[host_id]
        resident = self.vms[vm_id].power_state in (PowerState.RUNNING, PowerState.PAUSED)
        return self.update_vm(
            vm_id, container=host_id if resident else host.pool_id, pool_id=host.pool_id
        )

    def stop_vm(self, vm_id: str) -> VM:
        vm = self.vms[vm_id]
        return self.update_vm(
            vm_id,
            power_state=PowerState.HALTED,
            container=vm.pool_id,
            main_ip_address=None,
            addresses={},
        )

    def start_vm(self, vm_id: str, *, host_id: str, main_ip_address: str | None = None) -> VM:
        """Start on ``host_id``; guest tools report ``main_ip_address`` again when given."""
        addresses = {"0/ipv4/0": main_ip_address} if main_ip_address else {}
        return self.update_vm(
            vm_id,
            power_state=PowerState.RUNNING,
            container=host_id,
            main_ip_address=main_ip_address,
            addresses=addresses,
        )

    def disconnect_pool(self, pool_id: str) -> None:
        """XO loses the pool: its objects vanish, subscribers see ``remove``."""
        gone = [vm for vm in self.vms.values() if vm.pool_id == pool_id]
        for vm in gone:
            self._publish(ChangeKind.REMOVED, vm)
        self.disconnected.add(pool_id)

    def reconnect_pool(self, pool_id: str, *, vms_loaded: bool = True) -> None:
        """XO has the pool again; ``vms_loaded`` False: but not its VMs (``load_pool_vms``)."""
        self.disconnected.discard(pool_id)
        if not vms_loaded:
            self.unloaded.add(pool_id)
            return
        for vm in self.vms.values():
            if vm.pool_id == pool_id:
                self._publish(ChangeKind.ADDED, vm)

    def load_pool_vms(self, pool_id: str) -> None:
        self.unloaded.discard(pool_id)
        self.reconnect_pool(pool_id)

    def drop_streams(self) -> None:
        """Simulate a reconnect of the change stream: everyone must re-list."""
        for queue in self._subscribers:
            queue.put_nowait(VMChange(ChangeKind.RESYNC))
