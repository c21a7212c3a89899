"""One driver per contract subject: the same world, built and changed two ways.

The in-memory subject is driven by ``InMemoryInventory``'s own methods; the
HTTP subject is ``XOInventory`` talking to a fake XO on loopback, driven over
the fake's ``/_control`` HTTP API, as an operator acting on XO would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from adapters.memory import InMemoryInventory
from domain.model import VM, Host, Pool, PowerState
from domain.ports import Inventory
from entrypoints.testkits.fake_xo import FakeXOControlClient
from tests.xo.support import TOKEN

GIB = 1024**3


def first_ipv4(addresses: Mapping[str, str]) -> str | None:
    return next((ip for key, ip in sorted(addresses.items()) if "/ipv4/" in key), None)


class Driver(Protocol):
    """What a contract test may do to the XO behind ``inventory``."""

    name: str
    inventory: Inventory

    async def add_pool(self, *, pool_id: str, name_label: str) -> None: ...

    async def add_host(self, *, host_id: str, pool_id: str, name_label: str) -> None: ...

    async def add_vm(
        self,
        *,
        vm_id: str,
        name_label: str,
        pool_id: str,
        host_id: str,
        running: bool = True,
        cpus: int = 2,
        memory: int = 4 * GIB,
        addresses: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> None: ...

    async def delete_vm(self, vm_id: str) -> None: ...

    async def tag_host(self, host_id: str, *, tags: Sequence[str]) -> None: ...

    async def tag_pool(self, pool_id: str, *, tags: Sequence[str]) -> None: ...

    async def migrate_vm(self, vm_id: str, *, host_id: str) -> None: ...

    async def stop_vm(self, vm_id: str) -> None: ...

    async def start_vm(self, vm_id: str, *, host_id: str) -> None: ...

    async def disconnect_pool(self, pool_id: str) -> None: ...

    async def reconnect_pool(self, pool_id: str, *, vms_loaded: bool = True) -> None: ...

    async def load_pool_vms(self, pool_id: str) -> None: ...

    async def events_failing(self, pool_id: str, error: str | None) -> None:
        """XO's event loop with the pool fails (``error``: the code of the Error XO
        shows) or works again (None); it keeps serving the pool's last objects."""
        ...

    async def drop_streams(self) -> None: ...

    async def set_admin(self, admin: bool) -> None:
        """The credentials become an admin's, or a user's whose ACLs show nothing."""
        ...


class MemoryDriver:
    name = "memory"

    def __init__(self) -> None:
        self.memory = InMemoryInventory()
        self.inventory: Inventory = self.memory

    async def add_pool(self, *, pool_id: str, name_label: str) -> None:
        self.memory.add_pool(Pool(id=pool_id, name_label=name_label))

    async def add_host(self, *, host_id: str, pool_id: str, name_label: str) -> None:
        self.memory.add_host(Host(id=host_id, name_label=name_label, pool_id=pool_id))

    async def add_vm(
        self,
        *,
        vm_id: str,
        name_label: str,
        pool_id: str,
        host_id: str,
        running: bool = True,
        cpus: int = 2,
        memory: int = 4 * GIB,
        addresses: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        reported = dict(addresses or {}) if running else {}
        self.memory.add_vm(
            VM(
                id=vm_id,
                name_label=name_label,
                power_state=PowerState.RUNNING if running else PowerState.HALTED,
                pool_id=pool_id,
                container=host_id if running else pool_id,
                cpus=cpus,
                memory_bytes=memory,
                main_ip_address=first_ipv4(reported),
                addresses=MappingProxyType(reported),
                tags=tuple(tags),
            )
        )

    async def delete_vm(self, vm_id: str) -> None:
        self.memory.delete_vm(vm_id)

    async def tag_host(self, host_id: str, *, tags: Sequence[str]) -> None:
        self.memory.tag_host(host_id, tags=tags)

    async def tag_pool(self, pool_id: str, *, tags: Sequence[str]) -> None:
        self.memory.tag_pool(pool_id, tags=tags)

    async def migrate_vm(self, vm_id: str, *, host_id: str) -> None:
        self.memory.migrate_vm(vm_id, host_id=host_id)

    async def stop_vm(self, vm_id: str) -> None:
        self.memory.stop_vm(vm_id)

    async def start_vm(self, vm_id: str, *, host_id: str) -> None:
        self.memory.start_vm(vm_id, host_id=host_id)

    async def disconnect_pool(self, pool_id: str) -> None:
        self.memory.disconnect_pool(pool_id)

    async def reconnect_pool(self, pool_id: str, *, vms_loaded: bool = True) -> None:
        self.memory.reconnect_pool(pool_id, vms_loaded=vms_loaded)

    async def load_pool_vms(self, pool_id: str) -> None:
        self.memory.load_pool_vms(pool_id)

    async def events_failing(self, pool_id: str, error: str | None) -> None:
        if error is None:
            self.memory.server_errors.pop(pool_id, None)
        else:
            self.memory.server_errors[pool_id] = error

    async def drop_streams(self) -> None:
        self.memory.drop_streams()

    async def set_admin(self, admin: bool) -> None:
        self.memory.admin = admin


class XOHTTPDriver:
    name = "xo-http"

    def __init__(self, inventory: Inventory, control: FakeXOControlClient) -> None:
        self.inventory = inventory
        self.control = control

    async def add_pool(self, *, pool_id: str, name_label: str) -> None:
        await self.control.add_pool(name_label=name_label, pool_id=pool_id)

    async def add_host(self, *, host_id: str, pool_id: str, name_label: str) -> None:
        await self.control.add_host(pool_id=pool_id, name_label=name_label, host_id=host_id)

    async def add_vm(
        self,
        *,
        vm_id: str,
        name_label: str,
        pool_id: str,
        host_id: str,
        running: bool = True,
        cpus: int = 2,
        memory: int = 4 * GIB,
        addresses: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        await self.control.add_vm(
            name_label=name_label,
            vm_id=vm_id,
            pool_id=pool_id,
            host_id=host_id if running else None,
            power_state="Running" if running else "Halted",
            cpus=cpus,
            memory=memory,
            addresses=addresses or {},
            tags=tags,
        )

    async def delete_vm(self, vm_id: str) -> None:
        await self.control.delete_vm(vm_id)

    async def tag_host(self, host_id: str, *, tags: Sequence[str]) -> None:
        await self.control.tag_host(host_id, tags=tags)

    async def tag_pool(self, pool_id: str, *, tags: Sequence[str]) -> None:
        await self.control.tag_pool(pool_id, tags=tags)

    async def migrate_vm(self, vm_id: str, *, host_id: str) -> None:
        await self.control.migrate_vm(vm_id, host_id=host_id)

    async def stop_vm(self, vm_id: str) -> None:
        await self.control.stop_vm(vm_id)

    async def start_vm(self, vm_id: str, *, host_id: str) -> None:
        await self.control.start_vm(vm_id, host_id=host_id)

    async def disconnect_pool(self, pool_id: str) -> None:
        await self.control.disconnect_pool(pool_id)

    async def reconnect_pool(self, pool_id: str, *, vms_loaded: bool = True) -> None:
        await self.control.reconnect_pool(pool_id, vms_loaded=vms_loaded)

    async def load_pool_vms(self, pool_id: str) -> None:
        await self.control.load_pool_vms(pool_id)

    async def events_failing(self, pool_id: str, error: str | None) -> None:
        await self.control.events_failing(pool_id, None if error is None else {"code": error})

    async def drop_streams(self) -> None:
        await self.control.drop_event_streams()

    async def set_admin(self, admin: bool) -> None:
        await self.control.call("POST", "/tokens", {"token": TOKEN, "admin": admin, "sees": []})
