"""``demo``: the real controllers on in-memory adapters, telling a short story.

Four VMs on three hosts in two pools; their nodes join with the
uninitialized taint (one with a little-endian systemUUID, as UEFI guests
report it); then one VM live-migrates, one stops and one is deleted. Each
node's state is printed whenever it changes, and the demo ends by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from adapters.memory import InMemoryEventRecorder, InMemoryInventory, InMemoryNodeStore
from domain import labels as L
from domain.model import VM, Host, Node, Pool, PowerState, Readiness, Taint, TaintEffect
from domain.options import CCMOptions, DeletionOptions
from domain.policies.system_uuid import swap_little_endian
from domain.ports import Inventory
from entrypoints.container import enabled_runnables, in_memory_container
from entrypoints.flags import Settings

GIB = 1024**3
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


class XOSide:
    """Where the demo's VMs live, and how the story changes them."""

    inventory: Inventory
    label: str

    def migrate(self, vm_id: str, host_id: str) -> None:
        raise NotImplementedError

    def stop(self, vm_id: str) -> None:
        raise NotImplementedError

    def delete(self, vm_id: str) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class MemoryXO(XOSide):
    label = "in-memory XO"

    def __init__(self) -> None:
        xo = InMemoryInventory()
        for pool in (POOL_PARIS, POOL_LYON):
            xo.add_pool(pool)
        for host in HOSTS:
            xo.add_host(host)
        for name, vm_id, host, cpus, gib, ip in VMS:
            xo.add_vm(
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
            )
        self.xo = xo
        self.inventory = xo

    def migrate(self, vm_id: str, host_id: str) -> None:
        self.xo.migrate_vm(vm_id, host_id=host_id)

    def stop(self, vm_id: str) -> None:
        self.xo.stop_vm(vm_id)

    def delete(self, vm_id: str) -> None:
        self.xo.delete_vm(vm_id)


class FakeHTTPXO(XOSide):
    """The fake XO server on loopback, read through the real HTTP adapter and its events."""

    label = "fake XO server over HTTP"

    def __init__(self) -> None:
        from adapters.fake_xo import FakeXOServer, FakeXOState

        self.server = FakeXOServer(host="127.0.0.1", port=0, state=FakeXOState(), ping_interval=5.0)

    async def start(self) -> None:
        from adapters.config import CloudConfig
        from adapters.xenorchestra import XOInventory

        await self.server.start()
        for pool in (POOL_PARIS, POOL_LYON):
            self.server.add_pool(name_label=pool.name_label, pool_id=pool.id)
        for host in HOSTS:
            self.server.add_host(pool_id=host.pool_id, name_label=host.name_label, host_id=host.id)
        for name, vm_id, host, cpus, gib, ip in VMS:
            self.server.add_vm(
                name_label=name,
                vm_id=vm_id,
                pool_id=host.pool_id,
                host_id=host.id,
                cpus=cpus,
                memory=gib * GIB,
                addresses={"0/ipv4/0": ip},
            )
        config = CloudConfig(url=self.server.url, token="fake-xo-token")
        self.inventory = XOInventory.from_config(config)

    def migrate(self, vm_id: str, host_id: str) -> None:
        self.server.migrate_vm(vm_id, host_id=host_id)

    def stop(self, vm_id: str) -> None:
        self.server.stop_vm(vm_id)

    def delete(self, vm_id: str) -> None:
        self.server.delete_vm(vm_id)

    async def aclose(self) -> None:
        await self.inventory.aclose()  # type: ignore[attr-defined]
        await self.server.stop()


def describe(node: Node) -> str:
    """One line: what ``kubectl get node -L ...`` would show of the CCM's work."""
    zone = node.labels.get(L.ZONE, "")
    taints = ",".join(f"{t.key.rsplit('/', 1)[-1]}:{t.effect.value}" for t in node.taints) or "-"
    xo = {k.split("/", 1)[1]: v for k, v in node.labels.items() if L.XO_NAMESPACE in k}
    shown = " ".join(
        f"{k}={xo[k]}"
        for k in ("name_label", "pool_name_label", "host_name_label", "original_host_id")
        if k in xo
    )
    return (
        f"{node.name:<16} providerID={node.provider_id or '-'}\n"
        f"{'':<16} zone={HOST_NAMES.get(zone, zone) or '-'} "
        f"type={node.labels.get(L.INSTANCE_TYPE, '-')} taints={taints} {shown}"
    )


class Printer:
    """Prints every node whose visible state changed since the last look."""

    def __init__(self, nodes: InMemoryNodeStore, out: Callable[[str], None]) -> None:
        self._nodes = nodes
        self._out = out
        self._seen: dict[str, str] = {}
        self._start = time.monotonic()

    def look(self) -> None:
        stamp = f"[{time.monotonic() - self._start:5.2f}s]"
        current = {name: describe(node) for name, node in self._nodes.nodes.items()}
        for name, text in current.items():
            if self._seen.get(name) != text:
                self._out(f"{stamp} {text}")
        for name in sorted(set(self._seen) - set(current)):
            self._out(f"{stamp} {name:<16} DELETED")
        self._seen = current


async def _until(predicate: Callable[[], bool], printer: Printer, limit: float = 10.0) -> bool:
    """Wait for the step's outcome, show it, and pause so each step reads apart."""
    deadline = time.monotonic() + limit
    while not (done := predicate()) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a store
        await asyncio.sleep(0.02)
    printer.look()
    await asyncio.sleep(0.3)
    return done


async def run_demo(out: Callable[[str], None] = print, *, xo: str = "memory") -> int:
    """Run the story; returns 0 when every controller did what it should."""
    side: XOSide
    if xo == "fake-http":
        side = FakeHTTPXO()
        await side.start()  # type: ignore[attr-defined]
    else:
        side = MemoryXO()
    try:
        return await _story(side, out)
    finally:
        await side.aclose()


async def _story(side: XOSide, out: Callable[[str], None]) -> int:
    world_nodes, world_events = InMemoryNodeStore(), InMemoryEventRecorder()
    settings = Settings(
        leader_elect=False,
        node_monitor_period=0.5,
        node_status_update_frequency=2.0,
    )
    container = in_memory_container(settings)
    # A short confirmation so the story fits in seconds (the default is 30 s).
    container.options.override(CCMOptions(deletion=DeletionOptions(confirm_delay=1.0)))
    container.inventory.override(side.inventory)
    container.nodes.override(world_nodes)
    container.events.override(world_events)

    printer = Printer(world_nodes, out)
    gate = container.gate()
    tasks = [
        asyncio.create_task(gate.run(enabled_runnables(container)), name="controllers"),
    ]
    nodes = world_nodes
    out(f"== XO: {side.label}; cluster: in-memory")
    ok = True
    try:
        out("== 1. four nodes join with the uninitialized taint")
        out("       (worker-3 reports its uuid little-endian, as UEFI guests do)")
        for name, vm_id, *_ in VMS:
            uuid = swap_little_endian(vm_id).upper() if name == "worker-3" else vm_id
            nodes.create(
                Node(name=name, system_uuid=uuid, taints=(UNINITIALIZED,), readiness=Readiness.TRUE)
            )
        printer.look()
        ok &= await _until(
            lambda: all(not n.has_taint(L.UNINITIALIZED_TAINT_KEY) for n in nodes.nodes.values()),
            printer,
        )

        out("== 2. worker-1 live-migrates from xcp-paris-1 to xcp-paris-2 (cloud-node-label-sync)")
        side.migrate(VMS[1][1], HOSTS[1].id)
        ok &= await _until(
            lambda: nodes.nodes["worker-1"].labels.get(L.ZONE) == HOSTS[1].id, printer
        )

        out("== 3. worker-2's VM stops; kubelet stops reporting (cloud-node-lifecycle)")
        side.stop(VMS[2][1])
        nodes.set_readiness("worker-2", Readiness.UNKNOWN)
        ok &= await _until(lambda: nodes.nodes["worker-2"].has_taint(L.SHUTDOWN_TAINT.key), printer)

        out("== 4. worker-3's VM is deleted in XO; its node goes NotReady (cloud-node-lifecycle)")
        out("       (deleted once XO shows it gone twice, 1 s apart, with its pool known)")
        side.delete(VMS[3][1])
        nodes.set_readiness("worker-3", Readiness.FALSE)
        ok &= await _until(lambda: "worker-3" not in nodes.nodes, printer)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    out("== events recorded")
    for e in world_events.events:
        out(f"  {e.type.value:<7} {e.reason:<26} {e.node:<16} {e.message}")
    out(
        "== demo " + ("finished: all three controllers acted" if ok else "FAILED: a step timed out")
    )
    return 0 if ok else 1
