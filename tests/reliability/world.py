"""A small cluster for fault injection: two XO pools, Nodes (some NotReady), the CCM.

:class:`World` owns a fake XO server, a set of Nodes on the real API server
(one per VM, created as kubelet registers them, with an operator label),
a :class:`NodeWatch` fed into an :class:`InvariantTracker`, and the CCM
processes it starts. Every change it makes to XO is recorded first (hosts and
pools each VM was on), so the tracker can tell a valid label from a corrupted
one, and :meth:`World.unconverged` can say which work is still pending.

:func:`fault_scenario` is the shape of every fault test: converge, inject the
fault, make work pile up during it, clear it, then require convergence within
a stated bound, with no invariant broken and the process still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from adapters.kubernetes import ApiUnavailableError, KubeClient
from domain import labels
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.integration.ccm_process import CCMProcess, write_cloud_config
from tests.integration.proxy import Rule
from tools.bench.cluster import (
    SHUTDOWN_TAINT,
    NodeWatch,
    create_nodes,
    delete_run,
    kubelet_node,
)
from tools.bench.scenarios import metric

from .invariants import InvariantTracker

TOKEN = "fake-xo-token"
TEAM_KEY = "team.example/owner"
INSTANCE_TYPE = "2vCPU-4GB"
#: Short periods so a fault test sees many passes (the brief's settings).
FAST_PERIODS = ("--node-monitor-period=1s", "--node-status-update-frequency=5s")
CONFIG_EXTRA = "deletionConfirmDelay: 2\n"

#: (role, pool, VM running, Node Ready): 10 Nodes, 4 of them NotReady.
LAYOUT: tuple[tuple[str, str, bool, bool], ...] = (
    ("a-ready-0", "a", True, True),
    ("a-ready-1", "a", True, True),
    ("a-ready-2", "a", True, True),
    ("a-ready-3", "a", True, True),
    ("a-down-0", "a", True, False),  # kubelet down, VM running: keep, no taint
    ("a-halted-0", "a", False, False),  # VM shut down: keep, shutdown taint
    ("b-ready-0", "b", True, True),
    ("b-ready-1", "b", True, True),
    ("b-down-0", "b", True, False),
    ("b-halted-0", "b", False, False),
)

T = TypeVar("T")

#: Results the terminal summary prints (name -> measured values).
RESULTS: dict[str, dict[str, Any]] = {}


@dataclass
class VMHistory:
    """Everything a VM has been: any of it is a valid label value, nothing else."""

    hosts: set[str] = field(default_factory=set)
    pools: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=lambda: {INSTANCE_TYPE})
    names: set[str] = field(default_factory=set)


@dataclass
class Member:
    name: str
    vm: str
    pool: str  # "a" or "b"
    ready: bool
    team: str = "blue"


class World:
    def __init__(self, *, kube: KubeClient, kubeconfig: Path, xo: FakeXOServer, run: str) -> None:
        self.kube = kube
        self.kubeconfig = kubeconfig
        self.xo = xo
        self.run = run
        self.pools: dict[str, str] = {}
        self.hosts: dict[str, list[str]] = {}
        self.members: dict[str, Member] = {}
        self.history: dict[str, VMHistory] = {}
        self.watch = NodeWatch(kube, f"{run}-")
        self.tracker = InvariantTracker(self)
        self.watch.hooks.append(self.tracker)
        self.ccms: list[CCMProcess] = []
        self.killed: list[CCMProcess] = []
        self._configs: list[Path] = []
        self._new = 0

    # -- set-up ---------------------------------------------------------------
    @classmethod
    async def create(
        cls,
        kube: KubeClient,
        kubeconfig: Path,
        *,
        layout: Sequence[tuple[str, str, bool, bool]] = LAYOUT,
        ping_interval: float = 5.0,
        hosts_per_pool: int = 2,
    ) -> World:
        xo = FakeXOServer(token=TOKEN, ping_interval=ping_interval, seed=11)
        await xo.start()
        world = cls(kube=kube, kubeconfig=kubeconfig, xo=xo, run=f"rel-{uuid.uuid4().hex[:6]}")
        try:
            for key in ("a", "b"):
                pool = xo.state.add_pool(name_label=f"Pool {key.upper()}")["id"]
                world.pools[key] = pool
                world.hosts[key] = [
                    xo.state.add_host(pool_id=pool, name_label=f"xcp-{key}{i}")["id"]
                    for i in range(hosts_per_pool)
                ]
            await world.watch.start()
            objects = [
                world._new_member(role, pool, running=running, ready=ready)
                for role, pool, running, ready in layout
            ]
            await create_nodes(kube, objects, concurrency=16)
        except BaseException:
            await world.aclose()
            raise
        return world

    def _new_member(self, role: str, pool: str, *, running: bool, ready: bool) -> dict[str, Any]:
        """Add the VM to XO and return the Node kubelet would register for it."""
        name = f"{self.run}-{role}"
        hosts = self.hosts[pool]
        host = hosts[len(self.members) % len(hosts)] if running else None
        history = VMHistory(pools={self.pools[pool]}, names={name})
        if host:
            history.hosts.add(host)
        vm = self.xo.state.add_vm(
            name_label=name,
            pool_id=self.pools[pool],
            host_id=host,
            power_state="Running" if running else "Halted",
        )["id"]
        self.history[vm] = history
        self.members[name] = Member(name=name, vm=vm, pool=pool, ready=ready)
        return kubelet_node(
            name,
            run=self.run,
            system_uuid=vm,
            ready="True" if ready else "False",
            labels={TEAM_KEY: "blue"},
        )

    async def start_ccm(
        self,
        *flags: str,
        ready_within: float = 30.0,
        extra_config: str = "",
        kubeconfig: Path | None = None,
        token: str = TOKEN,
    ) -> CCMProcess:
        """Start a CCM on this world; ``kubeconfig`` (default the admin's) may lead
        through a proxy, ``token`` is written to the cloud config as a YAML string
        (so it may end with a newline, as ``echo tok | base64`` makes it)."""
        config = write_cloud_config(
            self.xo.url, token=json.dumps(token), extra=CONFIG_EXTRA + extra_config
        )
        self._configs.append(config)
        ccm = CCMProcess(
            kubeconfig=kubeconfig or self.kubeconfig,
            cloud_config=config,
            flags=[*FAST_PERIODS, f"--leader-elect-resource-name={self.run}", *flags],
        )
        self.ccms.append(ccm)
        await ccm.start()
        await ccm.wait_ready(within=ready_within)
        return ccm

    async def aclose(self) -> None:
        await self.watch.stop()
        for ccm in self.ccms:
            await ccm.stop()
            ccm.cleanup()
        with contextlib.suppress(Exception):
            await _retrying(lambda: delete_run(self.kube, self.run))
        await self.xo.stop()
        for config in self._configs:
            with contextlib.suppress(OSError):
                os.unlink(config)

    # -- changes (recorded before they are made) -------------------------------
    def member(self, role: str) -> Member:
        return self.members[f"{self.run}-{role}"]

    def migrate(self, role: str, host: str | None = None) -> str:
        member = self.member(role)
        vm = self.xo.state.objects["VM"][member.vm]
        target = host or next(h for h in self.hosts[member.pool] if h != vm["$container"])
        target_pool = self.xo.state.objects["host"][target]["$pool"]
        self.history[member.vm].hosts.add(target)
        self.history[member.vm].pools.add(target_pool)
        self.xo.state.migrate_vm(member.vm, host_id=target)
        member.pool = next(k for k, p in self.pools.items() if p == target_pool)
        return target

    def stop_vm(self, role: str) -> None:
        self.xo.state.stop_vm(self.member(role).vm)

    def start_vm(self, role: str) -> None:
        member = self.member(role)
        host = self.hosts[member.pool][0]
        self.history[member.vm].hosts.add(host)
        self.xo.state.start_vm(member.vm, host_id=host)

    def delete_vm(self, role: str) -> None:
        self.xo.state.delete_vm(self.member(role).vm)

    async def set_ready(self, role: str, ready: bool) -> None:
        member = self.member(role)
        member.ready = ready
        await _retrying(lambda: set_node_ready(self.kube, member.name, ready))

    async def add_node(self, pool: str = "a", *, running: bool = True, ready: bool = True) -> str:
        """A new VM and its Node (with the uninitialized taint): work for the CCM."""
        self._new += 1
        role = f"{pool}-new-{self._new}"
        obj = self._new_member(role, pool, running=running, ready=ready)
        await _retrying(lambda: create_nodes(self.kube, [obj]))
        return role

    def pending_xo_work(self, pool: str = "a") -> list[str]:
        """XO changes the CCM must act on: a migration, a VM stopped, a VM deleted
        under a NotReady node. Needs no API server."""
        target = self.migrate(f"{pool}-ready-0")
        self.stop_vm(f"{pool}-ready-1")
        self.delete_vm(f"{pool}-down-0")
        return [
            f"{pool}-ready-0 migrated to {target[:8]}",
            f"{pool}-ready-1 VM stopped",
            f"{pool}-down-0 VM deleted (node NotReady)",
        ]

    async def pending_kube_work(self, pool: str = "a") -> list[str]:
        """Node changes the CCM must act on: the stopped VM's node goes NotReady,
        a new node joins."""
        await self.set_ready(f"{pool}-ready-1", False)
        role = await self.add_node(pool)
        return [f"{pool}-ready-1 NotReady", f"{role} joined"]

    async def pending_work(self, pool: str = "a") -> list[str]:
        return [*self.pending_xo_work(pool), *await self.pending_kube_work(pool)]

    # -- expectations ---------------------------------------------------------
    def unconverged(self) -> list[str]:
        """What is not yet as XO says it should be (empty: all work is done)."""
        out = []
        vms = self.xo.state.objects["VM"]
        for member in self.members.values():
            view = self.watch.nodes.get(member.name)
            vm = vms.get(member.vm)
            if vm is None and not member.ready:
                if view is not None:
                    out.append(f"{member.name}: VM deleted, Node still there")
                continue
            if view is None:
                out.append(f"{member.name}: Node missing")
                continue
            if not view.initialized:
                out.append(f"{member.name}: not initialized")
                continue
            if vm is None:
                continue
            want = {
                labels.REGION: vm["$pool"],
                labels.POOL_ID: vm["$pool"],
                labels.INSTANCE_TYPE: INSTANCE_TYPE,
                TEAM_KEY: member.team,
            }
            if vm["power_state"] == "Running":
                want[labels.HOST_ID] = vm["$container"]
                # Label sync moves a zone, it never adds one: a node initialized
                # while its VM was halted has none (see the report).
                if labels.ZONE in view.labels:
                    want[labels.ZONE] = vm["$container"]
            for key, value in want.items():
                if view.labels.get(key) != value:
                    out.append(f"{member.name}: {key}={view.labels.get(key)!r}, want {value!r}")
            tainted = SHUTDOWN_TAINT in view.taints
            should = not view.ready and vm["power_state"] != "Running"
            if tainted != should:
                out.append(f"{member.name}: shutdown taint {'present' if tainted else 'missing'}")
        return out

    async def wait_converged(self, *, within: float) -> float:
        """Seconds until :meth:`unconverged` is empty; AssertionError after ``within``."""
        try:
            return await self.watch.wait_for(lambda: not self.unconverged(), within=within)
        except TimeoutError:
            raise AssertionError(
                f"work still pending after {within:g}s: {self.unconverged()}\n{self.diagnostics()}"
            ) from None

    def crashed(self) -> list[CCMProcess]:
        return [c for c in self.ccms if c.returncode is not None and c not in self.killed]

    def diagnostics(self) -> str:
        parts = [f"violations: {self.tracker.violations}"]
        for i, ccm in enumerate(self.ccms):
            parts.append(
                f"--- CCM {i} (returncode {ccm.returncode}) log tail ---\n{ccm.log[-4000:]}"
            )
        return "\n".join(parts)

    def assert_healthy(self) -> None:
        assert not self.crashed(), f"a CCM process exited\n{self.diagnostics()}"
        assert not self.tracker.violations, self.diagnostics()


async def set_node_ready(kube: KubeClient, name: str, ready: bool) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "set by the fault test",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        body={"status": {"conditions": [condition]}},
        content_type="application/merge-patch+json",
    )


async def _retrying(call: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """Retry a request while the API server is unreachable (it may be restarting)."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except ApiUnavailableError:
            await asyncio.sleep(0.5)
    return await call()


def xo_errors(kind: str) -> Callable[[str], bool]:
    """``fault_seen`` check: the CCM counted failed XO requests of this kind."""
    return lambda text: metric(text, "xenorchestra_request_errors_total", error=kind) > 0


async def leading(ccm: CCMProcess) -> bool:
    try:
        return metric(await ccm.metrics(), "leader_election_master_status") >= 1
    except Exception:
        return False


class LeaderOverlap:
    """Samples both CCMs' leader gauge every 0.1 s: ``overlaps`` counts the samples in
    which both said they lead (the gauge drops only once the controllers have
    stopped), ``standby_leading_at`` when the standby first did."""

    def __init__(self, leader: CCMProcess, standby: CCMProcess) -> None:
        self.overlaps = 0
        self.samples = 0
        self.standby_leading_at: float | None = None
        self._pair = (leader, standby)
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        leader, standby = self._pair
        while True:
            first, second = await asyncio.gather(leading(leader), leading(standby))
            self.samples += 1
            if first and second:
                self.overlaps += 1
            if second and self.standby_leading_at is None:
                self.standby_leading_at = time.monotonic()
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def lease_not_json(name: str) -> Rule:
    """A middlebox answering the leader's every Lease request with a 200 that is not JSON."""

    async def rule(request: web.Request, forward: object) -> web.Response | None:
        if request.path.endswith(f"/leases/{name}"):
            return web.Response(status=200, text="<html>OK</html>", content_type="application/json")
        return None

    return rule


#: Issue 13 case 6: each of these once escaped the XO adapter's error types.
DECODING_MODES = ("bad-encoding", "deep", "overflow", "wrong-types", "bad-utf8")


async def texts_holding(world: World, secret: str) -> list[str]:
    """Where ``secret`` shows: any CCM's output (stdout and stderr), any Event."""
    found = [f"CCM {i} output" for i, ccm in enumerate(world.ccms) if secret in ccm.log]
    for path in ("/api/v1/events", "/apis/events.k8s.io/v1/events"):
        answer = await world.kube.request("GET", path)
        if secret in json.dumps(answer):
            found.append(f"Events ({path})")
    return found


async def fault_scenario(
    world: World,
    *,
    name: str,
    inject: Callable[[], Awaitable[object]],
    clear: Callable[[], Awaitable[object]],
    fault_seconds: float,
    bound: float,
    pool: str = "a",
    flags: Sequence[str] = (),
    fault_seen: Callable[[str], bool] | None = None,
    token: str = TOKEN,
) -> float:
    """Converge, inject, pile up work, clear, then require convergence within
    ``bound`` seconds; returns the measured recovery time. ``fault_seen`` gets the
    CCM's metrics after the fault: it proves the fault reached the CCM; ``token`` is the
    one its cloud config holds."""
    ccm = await world.start_ccm(*flags, token=token)
    baseline = await world.wait_converged(within=30)
    world.assert_healthy()
    await inject()
    fault_started = time.monotonic()
    work = await world.pending_work(pool)
    await asyncio.sleep(max(0.0, fault_seconds - (time.monotonic() - fault_started)))
    assert ccm.returncode is None, f"the CCM exited during the fault\n{world.diagnostics()}"
    if fault_seen is not None:
        text = await ccm.metrics()
        assert fault_seen(text), f"the fault never reached the CCM:\n{text}"
    await clear()
    recovery = await world.wait_converged(within=bound)
    await asyncio.sleep(2.0)  # more passes after convergence: nothing may regress
    assert not world.unconverged(), world.unconverged()
    world.assert_healthy()
    RESULTS[name] = {
        "fault_seconds": fault_seconds,
        "recovery_seconds": round(recovery, 1),
        "bound_seconds": bound,
        "baseline_convergence_seconds": round(baseline, 1),
        "pending_work": work,
        "checks": dict(world.tracker.checks),
    }
    return recovery
