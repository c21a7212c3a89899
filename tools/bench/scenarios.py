"""The four benchmarks: registration, steady state, reaction, footprint.

Each takes a :class:`BenchEnv` (one control plane and an admin client for the
whole run) and returns a plain dict of results. XO is the fake XO server in
this process with ``latency`` seconds injected before every API answer; the
CCM runs as operators run it (the console script in a subprocess), except for
the steady-state passes, which run the services in this process on the real
adapters so that each pass's requests can be counted exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from adapters.config import CloudConfig
from adapters.kubernetes import (
    ClientSettings,
    KubeClient,
    KubernetesEventRecorder,
    KubernetesNodeStore,
    connect,
)
from adapters.system_clock import SystemClock
from adapters.xenorchestra import XOInventory
from domain import labels
from domain.services import LabelSyncService, RegistrationService
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.integration.ccm_process import CCMProcess, write_cloud_config
from tests.integration.waiting import until

from .builds import THIS_TREE, BenchCCM, Build
from .cluster import (
    RUN_LABEL,
    NodeWatch,
    bench_client,
    create_nodes,
    delete_run,
    initialized_node,
    kubelet_node,
)
from .plane import ManagedControlPlane, writes
from .procfs import MIB, Sampler, sample, window_summary

TOKEN = "fake-xo-token"
#: The CCM as deployed: production leader-election timings (CCMProcess's
#: defaults are shortened for tests) and the default log level.
PRODUCTION_FLAGS = (
    "--leader-elect-lease-duration=15s",
    "--leader-elect-renew-deadline=10s",
    "--leader-elect-retry-period=2s",
    "--v=2",
)
DEFAULT_QPS, DEFAULT_BURST = 20.0, 30
TAINT_REMOVAL_HISTOGRAM = "node_controller_cloud_provider_taint_removal_delay_seconds"
OLD_TAINT_REMOVAL_HISTOGRAM = "cloud_provider_taint_removal_delay_seconds"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "count": len(values),
    }


_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric(text: str, name: str, **label_values: str) -> float:
    """Sum of the series ``name`` whose labels include ``label_values`` (Prometheus text)."""
    total = 0.0
    for line in text.splitlines():
        match = _SERIES.match(line)
        if not match or match.group(1) != name:
            continue
        series_labels = match.group(2) or ""
        if all(f'{k}="{v}"' in series_labels for k, v in label_values.items()):
            total += float(match.group(3))
    return total


def flag_value(flags: Sequence[str], name: str, default: float) -> float:
    value = default
    for flag in flags:
        if flag.startswith(f"--{name}="):
            value = float(flag.split("=", 1)[1])
    return value


@dataclass
class BenchEnv:
    plane: ManagedControlPlane
    kube: KubeClient
    latency: float = 0.005
    #: the fleet of initialized nodes grown by the steady-state and footprint runs
    fleet_xo: FakeXOServer | None = None
    fleet_pool: str = ""
    fleet_vms: list[str] = field(default_factory=list)
    fleet_nodes: int = 0
    fleet_run: str = "fleet"
    ccm_processes: list[CCMProcess] = field(default_factory=list)

    async def fake_xo(self, *, hosts: int) -> tuple[FakeXOServer, str, list[str]]:
        xo = FakeXOServer(token=TOKEN, ping_interval=30.0, seed=7)
        await xo.start()
        pool = xo.state.add_pool(name_label="bench-pool")["id"]
        host_ids = [
            xo.state.add_host(pool_id=pool, name_label=f"xcp-host-{i:02d}")["id"]
            for i in range(hosts)
        ]
        xo.faults.set(latency=self.latency)
        return xo, pool, host_ids

    async def start_ccm(
        self,
        xo: FakeXOServer,
        *,
        run: str,
        flags: Sequence[str] = (),
        extra_config: str = "",
        build: Build = THIS_TREE,
        label: str = "",
    ) -> CCMProcess:
        config = write_cloud_config(xo.url, token=TOKEN, extra=extra_config)
        ccm = BenchCCM(
            build=build,
            kubeconfig=self.plane.admin_kubeconfig,
            cloud_config=config,
            flags=[*PRODUCTION_FLAGS, f"--leader-elect-resource-name=bench-{run}", *flags],
            profile=build.next_profile(label or run),
        )
        self.ccm_processes.append(ccm)
        await ccm.start()
        await ccm.wait_ready(within=120)
        await wait_leading(ccm)
        return ccm

    async def stop_ccm(self, ccm: CCMProcess) -> int:
        code = await ccm.stop()
        config = next(a for a in ccm.argv if a.startswith("--cloud-config=")).split("=", 1)[1]
        with contextlib.suppress(OSError):
            os.unlink(config)
        build = getattr(ccm, "build", None)
        if build is not None and build.binary is not None and code == -signal.SIGTERM:
            code = 0  # the Go CCM ends on SIGTERM by the signal, not by exiting
        if code != 0:
            logger.warning("CCM exited {}:\n{}", code, ccm.log[-3000:])
        ccm.cleanup()
        self.ccm_processes.remove(ccm)
        return code

    async def aclose(self) -> None:
        for ccm in list(self.ccm_processes):
            await self.stop_ccm(ccm)
        if self.fleet_xo is not None:
            await self.fleet_xo.stop()
            self.fleet_xo = None


async def wait_leading(ccm: CCMProcess, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ccm.returncode is not None:
            raise RuntimeError(f"CCM exited {ccm.returncode}:\n{ccm.log[-3000:]}")
        with contextlib.suppress(Exception):
            if metric(await ccm.metrics(), "leader_election_master_status") >= 1:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"CCM not leading within {within}s")


@contextlib.asynccontextmanager
async def bench_env(
    *, latency: float = 0.005, audit: bool = True, bin_dir: Path | None = None
) -> AsyncIterator[BenchEnv]:
    """One control plane (started here, stopped at the end) and an admin client."""
    plane = await asyncio.to_thread(ManagedControlPlane.create, audit=audit, bin_dir=bin_dir)
    started = time.monotonic()
    try:
        await asyncio.to_thread(plane.start)
        logger.info("control plane ready in {:.1f}s", time.monotonic() - started)
        kube = await bench_client(plane.admin_kubeconfig, workers=32)
        env = BenchEnv(plane=plane, kube=kube, latency=latency)
        try:
            yield env
        finally:
            await env.aclose()
            await kube.aclose()
    finally:
        await asyncio.to_thread(plane.stop)


# -- 1. registration ---------------------------------------------------------
async def registration(
    env: BenchEnv,
    *,
    nodes: int,
    flags: Sequence[str] = (),
    hosts: int = 8,
    build: Build = THIS_TREE,
) -> dict[str, Any]:
    """``nodes`` Nodes created at once with the uninitialized taint: time until all
    are initialized, per-node taint-removal delay, requests per node."""
    run = f"reg-{uuid.uuid4().hex[:6]}"
    qps = flag_value(flags, "kube-api-qps", DEFAULT_QPS)
    burst = flag_value(flags, "kube-api-burst", DEFAULT_BURST)
    xo, pool, _ = await env.fake_xo(hosts=hosts)
    try:
        vms = [vm["id"] for vm in xo.state.populate(count=nodes, pool_id=pool, prefix=run)]
        names = [f"{run}-{i:05d}" for i in range(nodes)]
        objects = [
            kubelet_node(name, run=run, system_uuid=vm) for name, vm in zip(names, vms, strict=True)
        ]
        ccm = await env.start_ccm(
            xo, run=run, flags=flags, build=build, label=f"registration-{nodes}"
        )
        await asyncio.sleep(1.0)  # the XO change stream connects and resyncs
        watch = await NodeWatch(env.kube, f"{run}-").start()
        try:
            xo.requests.reset()
            offset = env.plane.audit_offset()
            assert ccm.proc is not None
            sampler = Sampler(ccm.proc.pid, every=0.5).start()
            peers = {**env.plane.server_pids(), "node creator (bench)": os.getpid()}
            peers_before = {name: sample(pid).cpu for name, pid in peers.items()}
            started = time.monotonic()
            created = await create_nodes(env.kube, objects, concurrency=64)
            creating = time.monotonic() - started
            floor_guess = 3 * nodes / qps
            await watch.wait_for(
                lambda: len(watch.initialized_at) >= nodes, within=3 * floor_guess + 120
            )
            peers_cpu = {
                name: round(sample(pid).cpu - peers_before[name], 2) for name, pid in peers.items()
            }
            finished = max(watch.initialized_at.values())

            async def all_recorded() -> bool:
                text = await ccm.metrics()
                if build.binary is not None:  # the Go CCM: cloud-provider's histogram
                    return metric(text, f"{TAINT_REMOVAL_HISTOGRAM}_count") >= nodes
                done = metric(
                    text,
                    "xenorchestra_ccm_node_syncs_total",
                    controller="cloud-node",
                    result="initialized",
                )
                return done >= nodes

            with contextlib.suppress(TimeoutError):
                await until(all_recorded, within=60, every=0.2)
            await asyncio.sleep(1.0)  # trailing requests (status patch, event) land
            samples = await sampler.stop()
            text = await ccm.metrics()
            kube_counts = env.plane.requests_since(offset)
            xo_counts = xo.requests.snapshot()
        finally:
            await watch.stop()
        exit_code = await env.stop_ccm(ccm)
    finally:
        await xo.stop()
    await delete_run(env.kube, run)

    delays = [watch.initialized_at[n] - created[n] for n in names]
    total = finished - started
    kube_total = sum(kube_counts.values())
    # Events have their own budget (--event-qps) from this CCM on; older ones spent
    # --kube-api-qps on them: the floor counts what the build spends of that budget.
    event_requests = sum(n for k, n in kube_counts.items() if k.endswith(" events"))
    own_event_budget = (build.src / "adapters/kubernetes/event_queue.py").exists()
    budget_total = kube_total - (event_requests if own_event_budget else 0)
    per_node = kube_total / nodes
    floor = budget_total / qps
    floor_burst = max(0.0, budget_total - burst) / qps
    summary = window_summary(samples)
    # Named as cloud-provider names it since the Go CCM was measured beside this one;
    # revisions before that served it without the "node_controller_" prefix.
    histogram = next(
        (
            name
            for name in (TAINT_REMOVAL_HISTOGRAM, OLD_TAINT_REMOVAL_HISTOGRAM)
            if metric(text, f"{name}_count")
        ),
        TAINT_REMOVAL_HISTOGRAM,
    )
    hist_count = metric(text, f"{histogram}_count")
    hist_sum = metric(text, f"{histogram}_sum")
    return {
        "nodes": nodes,
        "flags": list(flags),
        "kube_api_qps": qps,
        "kube_api_burst": burst,
        "xo_latency_seconds": env.latency,
        "create_seconds": round(creating, 2),
        "all_initialized_seconds": round(total, 2),
        "api_rate_floor_seconds": round(floor, 2),
        "api_rate_floor_with_burst_seconds": round(floor_burst, 2),
        "ratio_to_floor": round(total / floor, 3) if floor else None,
        "taint_removal_delay_seconds": distribution(delays),
        "ccm_histogram_mean_delay_seconds": round(hist_sum / hist_count, 2) if hist_count else None,
        "xo_requests_per_node": round(sum(xo_counts.values()) / nodes, 3),
        "xo_requests": dict(sorted(xo_counts.items())),
        "kube_requests_per_node": round(per_node, 3),
        "kube_budget_requests_per_node": round(budget_total / nodes, 3),
        "event_requests_per_node": round(event_requests / nodes, 3),
        "kube_writes_per_node": round(writes(kube_counts) / nodes, 3),
        "kube_requests": dict(sorted(kube_counts.items())),
        "ccm": summary,
        "cpu_seconds_per_node": round(summary["cpu_seconds"] / nodes, 5),
        # What the run could not go below on this machine even with a CCM that used
        # no CPU at all: the others' CPU over the cores (when they were the limit).
        "peers_cpu_seconds": peers_cpu,
        "peers_floor_seconds": round(sum(peers_cpu.values()) / (os.cpu_count() or 1), 2),
        "ccm_exit_code": exit_code,
        "build": build.name,
        "profile": str(getattr(ccm, "profile", None) or ""),
    }


# -- 2. steady state -----------------------------------------------------------
async def lone_joins(
    env: BenchEnv,
    *,
    joins: int = 10,
    gap: float = 2.0,
    flags: Sequence[str] = (),
    build: Build = THIS_TREE,
) -> dict[str, Any]:
    """Nodes that join one at a time, ``gap`` seconds apart, the first as soon as the
    CCM leads: creation to taint removed for each. What the first one pays more than
    the others (imports done late, connections opened on demand, caches filled on
    first use) is what start-up left for it."""
    run = f"lone-{uuid.uuid4().hex[:6]}"
    xo, pool, _ = await env.fake_xo(hosts=4)
    try:
        vms = [vm["id"] for vm in xo.state.populate(count=joins, pool_id=pool, prefix=run)]
        ccm = await env.start_ccm(xo, run=run, flags=flags, build=build, label="lone-joins")
        assert ccm.proc is not None
        started = sample(ccm.proc.pid)  # ready and leading, before any node: what start left
        watch = await NodeWatch(env.kube, f"{run}-").start()
        delays: list[float] = []
        try:
            for i, vm_id in enumerate(vms):
                if i:
                    await asyncio.sleep(gap)
                name = f"{run}-{i:05d}"
                created = await create_nodes(
                    env.kube, [kubelet_node(name, run=run, system_uuid=vm_id)], concurrency=1
                )
                await watch.wait_for(lambda name=name: name in watch.initialized_at, within=60)
                delays.append(watch.initialized_at[name] - created[name])
        finally:
            await watch.stop()
        await env.stop_ccm(ccm)
    finally:
        await xo.stop()
    await delete_run(env.kube, run)
    return {
        "joins": joins,
        "gap_s": gap,
        "flags": list(flags),
        "rss_after_start_mib": round(started.rss / MIB, 1),
        "first_s": round(delays[0], 4),
        "p50_s": round(percentile(delays, 50), 4),
        "rest_p50_s": round(percentile(delays[1:], 50), 4),
        "max_s": round(max(delays), 4),
        "delays_s": [round(d, 4) for d in delays],
    }


#: What the controller process imports before it runs (both layouts measured have them).
CONTROLLER_IMPORTS = "import entrypoints.cli, entrypoints.app"


async def import_footprint(*, build: Build = THIS_TREE, repeat: int = 3) -> dict[str, Any]:
    """RSS of a fresh interpreter of ``build``'s production install once it imported
    what the controller process imports, before any work: the floor every Pod pays
    (the median of ``repeat`` fresh processes)."""
    code = (
        f"{CONTROLLER_IMPORTS}\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')))"
    )
    readings = []
    for _ in range(repeat):
        proc = await asyncio.create_subprocess_exec(
            *build.command()[:1],
            "-c",
            code,
            env={**os.environ, **build.env()},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{build.name}: importing the controller failed ({proc.returncode})")
        readings.append(int(out.split()[-1]) * 1024 / MIB)
    return {"rss_imports_mib": round(statistics.median(readings), 1), "readings": readings}


async def grow_fleet(env: BenchEnv, size: int, *, hosts: int = 20) -> dict[str, float]:
    """Make the fleet ``size`` VMs, each with an initialized Node (made here, not by
    the CCM, so 5,000 take seconds); returns how long each part took."""
    if env.fleet_xo is None:
        env.fleet_xo, env.fleet_pool, _ = await env.fake_xo(hosts=hosts)
    xo = env.fleet_xo
    timings: dict[str, float] = {}
    started = time.monotonic()
    missing = size - len(env.fleet_vms)
    if missing > 0:
        added = xo.state.populate(count=missing, pool_id=env.fleet_pool, prefix="fleet")
        env.fleet_vms.extend(vm["id"] for vm in added)
    timings["xo_populate_seconds"] = round(time.monotonic() - started, 2)
    if env.fleet_nodes >= size:
        return timings
    started = time.monotonic()
    async with XOInventory.from_config(CloudConfig(url=xo.url, token=TOKEN)) as inventory:
        snapshot = await inventory.snapshot()
    objects = []
    for i in range(env.fleet_nodes, size):
        vm = env.fleet_vms[i]
        obj = kubelet_node(f"fleet-{i:05d}", run=env.fleet_run, system_uuid=vm)
        objects.append(initialized_node(obj, vm_id=vm, snapshot=snapshot))
    await create_nodes(env.kube, objects, concurrency=64)
    env.fleet_nodes = size
    timings["create_nodes_seconds"] = round(time.monotonic() - started, 2)
    timings["nodes_created"] = len(objects)
    return timings


async def steady_state(env: BenchEnv, *, sizes: Sequence[int]) -> list[dict[str, Any]]:
    """XO requests per label-sync and address-sync pass, and Kubernetes requests of a
    pass that has nothing to change, at each fleet size."""
    results = []
    settings = ClientSettings(qps=0, burst=1, workers=8, user_agent="xoccm-bench-services")
    client = await connect(str(env.plane.admin_kubeconfig), settings=settings, name="services")
    try:
        async with KubernetesNodeStore(client) as store:
            for size in sizes:
                setup = await grow_fleet(env, size)
                assert env.fleet_xo is not None
                xo = env.fleet_xo

                async def cached(store: KubernetesNodeStore = store, size: int = size) -> bool:
                    mine = [n for n in await store.list() if n.labels.get(RUN_LABEL) == "fleet"]
                    return len(mine) >= size

                await until(cached, within=120, every=0.1)
                results.append(await _passes(env, xo, client, store, size, setup))
    finally:
        await client.aclose()
    return results


async def _passes(
    env: BenchEnv,
    xo: FakeXOServer,
    client: KubeClient,
    store: KubernetesNodeStore,
    size: int,
    setup: dict[str, float],
) -> dict[str, Any]:
    row: dict[str, Any] = {"vms": size, "nodes": size, "setup": setup}
    async with XOInventory.from_config(CloudConfig(url=xo.url, token=TOKEN)) as inventory:
        events = KubernetesEventRecorder(client)
        label_sync = LabelSyncService(inventory=inventory, nodes=store, events=events)
        registration_service = RegistrationService(
            inventory=inventory, nodes=store, events=events, clock=SystemClock()
        )
        passes = {
            "label_sync": label_sync.run_pass,
            "address_sync": registration_service.sync_addresses,
        }
        for name, run_pass in passes.items():
            # The first pass converges whatever the setup left different; the
            # second is the steady state: nothing changed since the last pass.
            for attempt in ("converge", "noop"):
                xo.requests.reset()
                before = client.requests.copy()
                started = time.monotonic()
                await run_pass()
                seconds = time.monotonic() - started
                kube = Counter(client.requests)
                kube.subtract(before)
                kube_requests = {k: v for k, v in kube.items() if v}
                kube_writes = sum(v for k, v in kube_requests.items() if k != "GET")
                xo_counts = xo.requests.snapshot()
                row[f"{name}_{attempt}"] = {
                    "xo_requests": sum(xo_counts.values()),
                    "xo_by_endpoint": dict(sorted(xo_counts.items())),
                    "kube_requests": kube_requests,
                    "kube_writes": kube_writes,
                    "seconds": round(seconds, 3),
                }
    return row


# -- 3. reaction ------------------------------------------------------------------
async def reaction(
    env: BenchEnv,
    *,
    nodes: int = 20,
    migrations: int = 8,
    deletions: int = 3,
    confirm_delay: float = 5.0,
) -> dict[str, Any]:
    """Seconds from a VM migration to the zone label changed (XO events on), and from
    a VM deletion (its Node NotReady) to the Node deleted."""
    run = f"react-{uuid.uuid4().hex[:6]}"
    xo, pool, hosts = await env.fake_xo(hosts=4)
    migration_delays: list[float] = []
    deletion_delays: list[float] = []
    try:
        vms = [vm["id"] for vm in xo.state.populate(count=nodes, pool_id=pool, prefix=run)]
        names = [f"{run}-{i:03d}" for i in range(nodes)]
        watch = await NodeWatch(env.kube, f"{run}-").start()
        ccm = await env.start_ccm(
            xo, run=run, extra_config=f"deletionConfirmDelay: {confirm_delay:g}\n"
        )
        try:
            await create_nodes(
                env.kube,
                [kubelet_node(n, run=run, system_uuid=v) for n, v in zip(names, vms, strict=True)],
            )
            await watch.wait_for(lambda: len(watch.initialized_at) >= nodes, within=120)
            await asyncio.sleep(1.0)
            for i in range(migrations):
                name, vm = names[i % nodes], vms[i % nodes]
                current = xo.state.objects["VM"][vm]["$container"]
                target = next(h for h in hosts if h != current)
                started = time.monotonic()
                xo.state.migrate_vm(vm, host_id=target)

                def moved(name: str = name, target: str = target) -> bool:
                    view = watch.nodes.get(name)
                    return view is not None and view.labels.get(labels.ZONE) == target

                await watch.wait_for(moved, within=60)
                migration_delays.append(time.monotonic() - started)
                await asyncio.sleep(0.3)

            doomed = list(zip(names[-deletions:], vms[-deletions:], strict=True))
            for name, _ in doomed:
                await _set_ready(env.kube, name, "False")
            await asyncio.sleep(6.0)  # a lifecycle pass sees them NotReady, VMs running
            started = time.monotonic()
            for _, vm in doomed:
                xo.state.delete_vm(vm)
            await watch.wait_for(
                lambda: all(n in watch.deleted_at for n, _ in doomed), within=confirm_delay + 60
            )
            deletion_delays = [watch.deleted_at[n] - started for n, _ in doomed]
            kept = [n for n in names if n not in dict(doomed)]
            wrongly_deleted = [n for n in kept if n in watch.deleted_at]
        finally:
            await watch.stop()
            exit_code = await env.stop_ccm(ccm)
    finally:
        await xo.stop()
    await delete_run(env.kube, run)
    return {
        "nodes": nodes,
        "xo_latency_seconds": env.latency,
        "migration_to_zone_label_seconds": distribution(migration_delays),
        "deletion_confirm_delay_seconds": confirm_delay,
        "vm_deleted_to_node_deleted_seconds": distribution(deletion_delays),
        "deletion_overhead_beyond_confirm_delay_seconds": round(
            max(deletion_delays) - confirm_delay, 3
        ),
        "wrongly_deleted": wrongly_deleted,
        "ccm_exit_code": exit_code,
    }


async def _set_ready(kube: KubeClient, name: str, status: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        body={
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": status,
                        "reason": "KubeletReady" if status == "True" else "KubeletNotReady",
                        "message": "set by the benchmark",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ]
            }
        },
        content_type="application/merge-patch+json",
    )


# -- 4. footprint -------------------------------------------------------------------
async def footprint(
    env: BenchEnv,
    *,
    nodes: int,
    window: float = 60.0,
    sync_period: str = "20s",
    build: Build = THIS_TREE,
) -> dict[str, Any]:
    """Peak RSS and CPU seconds of the CCM over a steady window with ``nodes``
    initialized Nodes (label and address passes every ``sync_period`` in it)."""
    setup = await grow_fleet(env, nodes)
    assert env.fleet_xo is not None
    xo = env.fleet_xo
    run = f"foot-{nodes}-{uuid.uuid4().hex[:4]}"
    started = time.monotonic()
    ccm = await env.start_ccm(
        xo,
        run=run,
        flags=[f"--node-status-update-frequency={sync_period}"],
        build=build,
        label=f"footprint-{nodes}",
    )
    ready = time.monotonic() - started
    assert ccm.proc is not None
    try:
        await asyncio.sleep(5.0)  # startup passes (label, address) over every node
        offset = env.plane.audit_offset()
        xo.requests.reset()
        sampler = Sampler(ccm.proc.pid, every=0.5).start()
        await asyncio.sleep(window)
        samples = await sampler.stop()
        kube_counts = env.plane.requests_since(offset)
        xo_counts = xo.requests.snapshot()
        alive = ccm.returncode is None
    finally:
        exit_code = await env.stop_ccm(ccm)
    summary = window_summary(samples)
    return {
        "nodes": nodes,
        "setup": setup,
        "startup_to_leading_seconds": round(ready, 1),
        "node_status_update_frequency": sync_period,
        **summary,
        "kube_requests_in_window": dict(sorted(kube_counts.items())),
        "kube_writes_in_window": writes(kube_counts),
        "xo_requests_in_window": dict(sorted(xo_counts.items())),
        "alive_through_window": alive,
        "ccm_exit_code": exit_code,
        "build": build.name,
        "profile": str(getattr(ccm, "profile", None) or ""),
    }
