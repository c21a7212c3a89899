"""The demo's story: the container for the chosen sides, five steps, what they print."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from adapters.config import CloudConfig
from adapters.memory import InMemoryEventRecorder, InMemoryInventory, InMemoryNodeStore
from domain import labels as L
from domain.model import Node, Readiness
from domain.policies.system_uuid import swap_little_endian
from entrypoints.container import Container, provide, shutdown
from entrypoints.demo.cluster import ClusterSide, MemoryCluster, RealCluster
from entrypoints.demo.world import HOST_NAMES, HOSTS, TOKEN, VMS, XOSide, fake_http_xo, memory_xo
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import PLACEHOLDER_CONFIG, InMemoryCluster, InMemoryXO
from entrypoints.testkits.fake_xo import FakeXOServer, FakeXOState
from entrypoints.testkits.local_cluster import ControlPlane, cached_binaries

#: Added by the API server's admission to every new node and removed by
#: kube-controller-manager, which the demo's bare control plane does not run.
ADMISSION_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


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


def kubectl_get_nodes(nodes: dict[str, Node]) -> list[str]:
    """``kubectl get nodes -L topology.kubernetes.io/zone,node.kubernetes.io/instance-type``."""
    rows = [("NAME", "STATUS", "ROLES", "ZONE", "INSTANCE-TYPE", "PROVIDER-ID")]
    for name in sorted(nodes):
        n = nodes[name]
        zone = n.labels.get(L.ZONE, "<none>")
        rows.append(
            (
                name,
                "Ready" if n.ready else "NotReady",
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


def demo_container(*, xo_url: str | None, kubeconfig: Path | None) -> Container:
    """The CCM for the demo: the real XO adapter when ``xo_url`` is given, the real
    Kubernetes adapters when ``kubeconfig`` is, in-memory ones otherwise; short
    periods and a 1 s deletion confirmation so the story fits in seconds."""
    settings = Settings(
        leader_elect=False,
        node_monitor_period=0.5,
        node_status_update_frequency=2.0,
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        kube_api_qps=200,
        kube_api_burst=400,
    )
    config = CloudConfig.model_validate(
        {
            "url": xo_url or PLACEHOLDER_CONFIG.url,
            "token": TOKEN,
            "deletionConfirmDelay": 1.0,  # the default is 30 s
        }
    )
    container = Container(settings=settings, cloud_config=config)
    if xo_url is None:
        container.override(InMemoryXO())
    if kubeconfig is None:
        container.override(InMemoryCluster())
    return container


async def run_demo(
    out: Callable[[str], None] = print, *, xo: str = "memory", cluster: str = "auto"
) -> int:
    """Run the story; returns 0 when every controller did what it should.

    ``xo``: ``memory`` or ``fake-http`` (the fake XO server on loopback).
    ``cluster``: ``real`` (a local kube-apiserver; its binaries must be built),
    ``memory``, or ``auto`` (real when the binaries are there, else memory).
    """
    bin_dir = cached_binaries() if cluster in ("auto", "real") else None
    if cluster == "real" and bin_dir is None:
        out("== no kube-apiserver/etcd binaries: run scripts/build-control-plane.sh first")
        return 1
    plane = ControlPlane(bin_dir) if bin_dir is not None else None
    server = (
        FakeXOServer(host="127.0.0.1", port=0, state=FakeXOState(), ping_interval=5.0)
        if xo == "fake-http"
        else None
    )
    if plane is not None:
        out("== starting etcd + kube-apiserver on loopback ...")
        await asyncio.to_thread(plane.start)
    elif cluster == "auto":
        out(
            "== kube-apiserver binaries not built (scripts/build-control-plane.sh): "
            "using the in-memory cluster"
        )
    try:
        if server is not None:
            await server.start()
        container = demo_container(
            xo_url=server.url if server is not None else None,
            kubeconfig=plane.admin_kubeconfig if plane is not None else None,
        )
        try:
            side, kube = await _sides(container, server, real_cluster=plane is not None)
            return await _story(container, side, kube, out)
        finally:
            await shutdown(container)
    finally:
        if server is not None:
            await server.stop()
        if plane is not None:
            await asyncio.to_thread(plane.stop)


async def _sides(
    container: Container, server: FakeXOServer | None, *, real_cluster: bool
) -> tuple[XOSide, ClusterSide]:
    """Both sides of the story, on the very adapters the container gives the CCM."""
    if server is not None:
        side = fake_http_xo(server)
    else:
        inventory = container.inventory()
        assert isinstance(inventory, InMemoryInventory)
        side = memory_xo(inventory)
    kube: ClusterSide
    if real_cluster:
        store = await provide(container.nodes)  # starts the Node cache
        await store.wait_synced()
        kube = RealCluster(await provide(container.kube_client), store)
    else:
        nodes, events = container.nodes(), container.events()
        assert isinstance(nodes, InMemoryNodeStore)
        assert isinstance(events, InMemoryEventRecorder)
        kube = MemoryCluster(nodes, events)
    return side, kube


async def _story(
    container: Container, side: XOSide, kube: ClusterSide, out: Callable[[str], None]
) -> int:
    printer = Printer(kube, out)
    gate = await provide(container.gate)
    runnables = await provide(container.runnables)
    tasks = [asyncio.create_task(gate.run(runnables), name="controllers")]
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
    final = await kube.current()
    for line in kubectl_get_nodes(final):
        out("  " + line)
    out("== events recorded")
    events = await kube.recorded_events()
    for type_, reason, node_name, message in events:
        out(f"  {type_:<7} {reason:<26} {node_name:<16} {message}")
    problems = contradictions(final, events)
    for problem in problems:
        out(f"== the end contradicts the story: {problem}")
    if not ok:
        out("== demo FAILED: a step timed out")
    elif problems:
        out("== demo FAILED: the cluster does not show what happened in XO")
    else:
        out("== demo finished: all three controllers acted")
    return 0 if ok and not problems else 1


def contradictions(nodes: dict[str, Node], events: list[tuple[str, str, str, str]]) -> list[str]:
    """Where the final cluster disagrees with the story XO told: every node initialized,
    worker-1 on xcp-paris-2 having moved exactly once, worker-2 tainted shut down,
    worker-3 deleted."""
    problems = []
    for name, *_ in VMS:
        node = nodes.get(name)
        if name == "worker-3":
            if node is not None:
                problems.append("worker-3 still exists although its VM was deleted")
            continue
        if node is None:
            problems.append(f"{name} was deleted although its VM exists")
        elif node.has_taint(L.UNINITIALIZED_TAINT_KEY):
            problems.append(f"{name} is still uninitialized")
    moved = nodes.get("worker-1")
    if moved is not None and moved.labels.get(L.ZONE) != HOSTS[1].id:
        zone = moved.labels.get(L.ZONE, "")
        problems.append(
            f"worker-1's zone is {HOST_NAMES.get(zone, zone) or 'unset'}, "
            f"but its VM runs on {HOSTS[1].name_label}"
        )
    moves = [e for e in events if e[1] == "NodeZoneChanged" and e[2] == "worker-1"]
    if len(moves) != 1:
        problems.append(f"worker-1's zone changed {len(moves)} times; its VM moved once")
    stopped = nodes.get("worker-2")
    if stopped is not None and not stopped.has_taint(L.SHUTDOWN_TAINT.key):
        problems.append("worker-2 lacks the shutdown taint although its VM is halted")
    return problems
