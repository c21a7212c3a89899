"""The demo's world, and the XO side of the story: where the VMs live and change."""

from __future__ import annotations

from typing import Protocol

from adapters.memory import InMemoryInventory
from domain import labels as L
from domain.model import VM, Host, Pool, PowerState, Taint, TaintEffect
from entrypoints.testkits.fake_xo import FakeXOServer

GIB = 1024**3
TOKEN = "fake-xo-token"
POOL_PARIS = Pool(id="b7569d99-30f8-178a-7d94-801de3e29b5b", name_label="Paris")
POOL_LYON = Pool(id="355ee47d-ff4c-4924-3db2-fd86ae629676", name_label="Lyon")
HOSTS = (
    Host(
        id="b61a5c92-700e-4966-a13b-00633f03eea8", name_label="xcp-paris-1", pool_id=POOL_PARIS.id
    ),
    Host(
        id="c2b4e7a0-1f2d-4c3b-9a8e-7d6c5b4a3f21", name_label="xcp-paris-2", pool_id=POOL_PARIS.id
    ),
    Host(id="d3c5f8b1-2e3f-4d4c-8b9f-8e7d6c5b4a32", name_label="xcp-lyon-1", pool_id=POOL_LYON.id),
)
VMS = (
    ("control-plane-1", "f07ab729-c0e8-721c-45ec-f11276377030", HOSTS[0], 2, 4, "10.1.6.10"),
    ("worker-1", "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d", HOSTS[0], 4, 8, "10.1.6.11"),
    ("worker-2", "2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e", HOSTS[1], 4, 8, "10.1.6.12"),
    ("worker-3", "3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9eaf", HOSTS[2], 8, 16, "10.2.0.13"),
)
UNINITIALIZED = Taint(key=L.UNINITIALIZED_TAINT_KEY, value="true", effect=TaintEffect.NO_SCHEDULE)
HOST_NAMES = {h.id: h.name_label for h in HOSTS}


#: The demo's VMs, running on their hosts, as XO reports them.
DEMO_VMS = tuple(
    VM(
        id=vm_id,
        name_label=name,
        power_state=PowerState.RUNNING,
        pool_id=host.pool_id,
        container=host.id,
        cpus=cpus,
        memory_bytes=gib * GIB,
        main_ip_address=ip,
        addresses={"0/ipv4/0": ip},
    )
    for name, vm_id, host, cpus, gib, ip in VMS
)


class Drivable(Protocol):
    """What the story does to XO: both the in-memory inventory and the fake's state can."""

    def migrate_vm(self, vm_id: str, *, host_id: str) -> object: ...

    def stop_vm(self, vm_id: str) -> object: ...

    def delete_vm(self, vm_id: str) -> object: ...


class XOSide:
    """Where the demo's VMs live (``label``), and how the story changes them."""

    def __init__(self, label: str, xo: Drivable) -> None:
        self.label = label
        self._xo = xo

    def migrate(self, vm_id: str, host_id: str) -> None:
        self._xo.migrate_vm(vm_id, host_id=host_id)

    def stop(self, vm_id: str) -> None:
        self._xo.stop_vm(vm_id)

    def delete(self, vm_id: str) -> None:
        self._xo.delete_vm(vm_id)


def memory_xo(xo: InMemoryInventory) -> XOSide:
    """The container's in-memory inventory, filled with the world."""
    for pool in (POOL_PARIS, POOL_LYON):
        xo.add_pool(pool)
    for host in HOSTS:
        xo.add_host(host)
    for vm in DEMO_VMS:
        xo.add_vm(vm)
    return XOSide("in-memory XO", xo)


def fake_http_xo(server: FakeXOServer) -> XOSide:
    """The fake XO server on loopback (started), filled with the world: the CCM reads
    it through its real HTTP adapter and its change events."""
    state = server.state
    for pool in (POOL_PARIS, POOL_LYON):
        state.add_pool(name_label=pool.name_label, pool_id=pool.id)
    for host in HOSTS:
        state.add_host(pool_id=host.pool_id, name_label=host.name_label, host_id=host.id)
    for vm in DEMO_VMS:
        state.add_vm(
            name_label=vm.name_label,
            vm_id=vm.id,
            pool_id=vm.pool_id,
            host_id=vm.container,
            cpus=vm.cpus,
            memory=vm.memory_bytes,
            addresses=dict(vm.addresses),
        )
    return XOSide("fake XO server over HTTP", state)
