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
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from adapters.testing.memory import InMemoryEventRecorder, InMemoryInventory, InMemoryNodeStore
from domain import labels as L
from domain.model import VM, Host, Node, Pool, PowerState, Readiness, Taint, TaintEffect
from domain.options import CCMOptions, DeletionOptions
from domain.policies.system_uuid import swap_little_endian
from domain.ports import EventRecorder, Inventory, NodeStore
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
#: Added by the API server's admission to every new node and removed by
#: kube-controller-manager, which the demo's bare control plane does not run.
ADMISSION_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


class XOSide(Protocol):
    """Where the demo's VMs live, and how the story changes them."""

    inventory: Inventory
    label: str

    def migrate(self, vm_id: str, host_id: str) -> None: ...

    def stop(self, vm_id: str) -> None: ...

    def delete(self, vm_id: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryXO:
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

    async def aclose(self) -> None:
        """Nothing to release."""


class FakeHTTPXO:
    """The fake XO server on loopback, read through the real HTTP adapter and its events."""

    label = "fake XO server over HTTP"

    def __init__(self) -> None:
        from adapters.testing.fake_xo import FakeXOServer, FakeXOState

        self.server = FakeXOServer(host="127.0.0.1", port=0, state=FakeXOState(), ping_interval=5.0)

    async def start(self) -> None:
        from adapters.config import CloudConfig
        from adapters.xenorchestra import XOInventory

        await self.server.start()
        for pool in (POOL_PARIS, POOL_LYON):
            self.server.state.add_pool(name_label=pool.name_label, pool_id=pool.id)
        for host in HOSTS:
            self.server.state.add_host(
                pool_id=host.pool_id, name_label=host.name_label, host_id=host.id
            )
        for name, vm_id, host, cpus, gib, ip in VMS:
            self.server.state.add_vm(
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
        self.server.state.migrate_vm(vm_id, host_id=host_id)

    def stop(self, vm_id: str) -> None:
        self.server.state.stop_vm(vm_id)

    def delete(self, vm_id: str) -> None:
        self.server.state.delete_vm(vm_id)

    async def aclose(self) -> None:
        await self.inventory.aclose()  # type: ignore[attr-defined]
        await self.server.stop()


def describe(node: Node) -> str:
    """One line: what ``kubectl get node -L ...`` would show of the CCM's work."""
    zone = node.labels.get(L.ZONE, "")
    taints = (
        ",".join(
            f"{t.key.rsplit('/', 1)[-1]}:{t.effect.value}"
            for t in node.taints
            if t.key not in ADMISSION_TAINTS
        )
        or "-"
    )
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


class ClusterSide(Protocol):
    """Where the demo's Nodes live: kubelet's side of the story."""

    label: str
    nodes: NodeStore
    events: EventRecorder

    async def join(self, name: str, system_uuid: str) -> None: ...

    async def set_readiness(self, name: str, readiness: Readiness) -> None: ...

    async def current(self) -> dict[str, Node]:
        """Every node, by name."""
        ...

    async def recorded_events(self) -> list[tuple[str, str, str, str]]:
        """(type, reason, node, message) of every event about the demo's nodes."""
        ...

    async def aclose(self) -> None: ...


class MemoryCluster:
    label = "in-memory cluster"

    def __init__(self) -> None:
        self.store = InMemoryNodeStore()
        self.recorder = InMemoryEventRecorder()
        self.nodes, self.events = self.store, self.recorder

    async def join(self, name: str, system_uuid: str) -> None:
        self.store.create(
            Node(
                name=name,
                system_uuid=system_uuid,
                taints=(UNINITIALIZED,),
                readiness=Readiness.TRUE,
            )
        )

    async def set_readiness(self, name: str, readiness: Readiness) -> None:
        self.store.set_readiness(name, readiness)

    async def recorded_events(self) -> list[tuple[str, str, str, str]]:
        return [(e.type.value, e.reason, e.node, e.message) for e in self.recorder.events]

    async def current(self) -> dict[str, Node]:
        return dict(self.store.nodes)

    async def aclose(self) -> None:
        """Nothing to release."""


def _ready_condition(status: str) -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady" if status == "True" else "KubeletNotReady",
        "message": "posted by the demo's make-believe kubelet",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


class RealCluster:
    """A real etcd + kube-apiserver on loopback; the CCM uses its real Kubernetes adapter."""

    label = "real kube-apiserver on loopback"

    def __init__(self, bin_dir: Path) -> None:
        from adapters.testing.local_cluster import ControlPlane

        self.plane = ControlPlane(bin_dir)

    async def start(self) -> None:
        from adapters.kubernetes import KubernetesEventRecorder, KubernetesNodeStore, connect

        await asyncio.to_thread(self.plane.start)
        self.client = await connect(str(self.plane.admin_kubeconfig), qps=200, burst=400)
        self.store = KubernetesNodeStore(self.client)
        await self.store.start()
        await self.store.wait_synced()
        self.nodes = self.store
        self.events = KubernetesEventRecorder(self.client)

    async def join(self, name: str, system_uuid: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {
                "taints": [
                    {"key": L.UNINITIALIZED_TAINT_KEY, "value": "true", "effect": "NoSchedule"}
                ]
            },
            "status": {
                "nodeInfo": {"systemUUID": system_uuid, "kubeletVersion": "v1.36.3"},
                "conditions": [_ready_condition("True")],
            },
        }
        await self.client.request("POST", "/api/v1/nodes", body=node)

    async def set_readiness(self, name: str, readiness: Readiness) -> None:
        await self.client.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            body={"status": {"conditions": [_ready_condition(readiness.value)]}},
            content_type="application/strategic-merge-patch+json",
        )

    async def recorded_events(self) -> list[tuple[str, str, str, str]]:
        answer = await self.client.request(
            "GET", "/api/v1/events", query=[("fieldSelector", "involvedObject.kind=Node")]
        )
        items = sorted(answer.get("items", []), key=lambda e: e.get("firstTimestamp") or "")
        return [
            (e["type"], e["reason"], e["involvedObject"]["name"], e.get("message", ""))
            for e in items
        ]

    async def aclose(self) -> None:
        await self.store.stop()
        await self.client.aclose()
        await asyncio.to_thread(self.plane.stop)

    async def current(self) -> dict[str, Node]:
        return {n.name: n for n in await self.store.list()}


def kubectl_get_nodes(nodes: dict[str, Node]) -> list[str]:
    """``kubectl get nodes -L topology.kubernetes.io/zone,node.kubernetes.io/instance-type``."""
    rows = [("NAME", "STATUS", "ROLES", "ZONE", "INSTANCE-TYPE", "PROVIDER-ID")]
    for name in sorted(nodes):
        n = nodes[name]
        status = "Ready" if n.ready else "NotReady"
        if any(
            t.effect.value == "NoSchedule" and t.key != L.UNINITIALIZED_TAINT_KEY for t in n.taints
        ):
            status += ",SchedulingDisabled" if False else ""
        zone = n.labels.get(L.ZONE, "<none>")
        rows.append(
            (
                name,
                status,
                "<none>",
                HOST_NAMES.get(zone, zone),
                n.labels.get(L.INSTANCE_TYPE, "<none>"),
                n.provider_id or "<none>",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


class Printer:
    """Prints every node whose visible state changed since the last look."""

    def __init__(self, cluster: ClusterSide, out: Callable[[str], None]) -> None:
        self.cluster = cluster
        self._out = out
        self._seen: dict[str, str] = {}
        self._start = time.monotonic()

    async def look(self) -> None:
        stamp = f"[{time.monotonic() - self._start:5.2f}s]"
        current = {name: describe(node) for name, node in (await self.cluster.current()).items()}
        for name, text in current.items():
            if self._seen.get(name) != text:
                self._out(f"{stamp} {text}")
        for name in sorted(set(self._seen) - set(current)):
            self._out(f"{stamp} {name:<16} DELETED")
        self._seen = current


async def _until(
    predicate: Callable[[dict[str, Node]], bool], printer: Printer, limit: float = 15.0
) -> bool:
    """Wait for the step's outcome, show it, and pause so each step reads apart."""
    deadline = time.monotonic() + limit
    cluster = printer.cluster
    while not (done := predicate(await cluster.current())) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    await printer.look()
    await asyncio.sleep(0.3)
    return done


async def run_demo(
    out: Callable[[str], None] = print, *, xo: str = "memory", cluster: str = "auto"
) -> int:
    """Run the story; returns 0 when every controller did what it should.

    ``cluster``: ``real`` (a local kube-apiserver; its binaries must be built),
    ``memory``, or ``auto`` (real when the binaries are there, else memory).
    """
    from adapters.testing.local_cluster import cached_binaries

    side: XOSide
    kube: ClusterSide
    bin_dir = cached_binaries() if cluster in ("auto", "real") else None
    if cluster == "real" and bin_dir is None:
        out("== no kube-apiserver/etcd binaries: run scripts/build-control-plane.sh first")
        return 1
    if bin_dir is not None:
        real = RealCluster(bin_dir)
        out("== starting etcd + kube-apiserver on loopback ...")
        await real.start()
        kube = real
    else:
        if cluster == "auto":
            out(
                "== kube-apiserver binaries not built (scripts/build-control-plane.sh): "
                "using the in-memory cluster"
            )
        kube = MemoryCluster()
    try:
        if xo == "fake-http":
            fake = FakeHTTPXO()
            await fake.start()
            side = fake
        else:
            side = MemoryXO()
        try:
            return await _story(side, kube, out)
        finally:
            await side.aclose()
    finally:
        await kube.aclose()


async def _story(side: XOSide, kube: ClusterSide, out: Callable[[str], None]) -> int:
    settings = Settings(
        leader_elect=False,
        node_monitor_period=0.5,
        node_status_update_frequency=2.0,
    )
    container = in_memory_container(settings)
    # A short confirmation so the story fits in seconds (the default is 30 s).
    container.options.override(CCMOptions(deletion=DeletionOptions(confirm_delay=1.0)))
    container.inventory.override(side.inventory)
    container.nodes.override(kube.nodes)
    container.events.override(kube.events)

    printer = Printer(kube, out)
    gate = container.gate()
    tasks = [
        asyncio.create_task(gate.run(enabled_runnables(container)), name="controllers"),
    ]
    out(f"== XO: {side.label}; cluster: {kube.label}")
    ok = True
    try:
        out("== 1. four nodes join with the uninitialized taint")
        out("       (worker-3 reports its uuid little-endian, as UEFI guests do)")
        for name, vm_id, *_ in VMS:
            uuid = swap_little_endian(vm_id).upper() if name == "worker-3" else vm_id
            await kube.join(name, uuid)
        while len(await kube.current()) < len(VMS):  # noqa: ASYNC110 - a real cache fills by watch
            await asyncio.sleep(0.01)
        await printer.look()
        ok &= await _until(
            lambda nodes: (
                len(nodes) == len(VMS)
                and all(not n.has_taint(L.UNINITIALIZED_TAINT_KEY) for n in nodes.values())
            ),
            printer,
        )

        out("== 2. worker-1 live-migrates from xcp-paris-1 to xcp-paris-2 (cloud-node-label-sync)")
        side.migrate(VMS[1][1], HOSTS[1].id)
        ok &= await _until(
            lambda nodes: nodes["worker-1"].labels.get(L.ZONE) == HOSTS[1].id, printer
        )

        out("== 3. worker-2's VM stops; kubelet stops reporting (cloud-node-lifecycle)")
        side.stop(VMS[2][1])
        await kube.set_readiness("worker-2", Readiness.UNKNOWN)
        ok &= await _until(lambda nodes: nodes["worker-2"].has_taint(L.SHUTDOWN_TAINT.key), printer)

        out("== 4. worker-3's VM is deleted in XO; its node goes NotReady (cloud-node-lifecycle)")
        out("       (deleted once XO shows it gone twice, 1 s apart, with its pool known)")
        side.delete(VMS[3][1])
        await kube.set_readiness("worker-3", Readiness.FALSE)
        ok &= await _until(lambda nodes: "worker-3" not in nodes, printer)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    out("== kubectl get nodes -L topology.kubernetes.io/zone,node.kubernetes.io/instance-type")
    for line in kubectl_get_nodes(await kube.current()):
        out("  " + line)
    out("== events recorded")
    for type_, reason, node_name, message in await kube.recorded_events():
        out(f"  {type_:<7} {reason:<26} {node_name:<16} {message}")
    out(
        "== demo " + ("finished: all three controllers acted" if ok else "FAILED: a step timed out")
    )
    return 0 if ok else 1
