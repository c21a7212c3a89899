"""The soak: ``python -m tools.soak.run [--minutes 10] [--nodes 500]``
(``scripts/soak`` does the set-up first).

One CCM process, ``--nodes`` Nodes (5 % NotReady with their VM running, 5 %
NotReady with their VM halted) on two pools of three hosts, then for
``--minutes``: epochs of random churn (live migrations, a few across pools, VMs
stopped and started with their Node going NotReady and Ready, VMs deleted under
NotReady Nodes, new Nodes joining) with one fault in the middle of each (XO
down, 50 % 500s, XO slow, garbage bodies, bodies and event frames that break
decoding, token revoked, a pool disconnected, nodes moved across pools then
their new pool lost, event streams dropped, kube-apiserver restarted), then a
quiet spell in which all pending work must be done within a bound. The CCM's
token ends with a newline, as ``echo tok | base64`` leaves it in a Secret.

A last phase (:mod:`tools.soak.cases`) replaces the process: the Lease answered with a
non-JSON 200, a restart storm under the deletion breaker, a dry run; and at
the end the token must show in no CCM output and no Event.

The invariant tracker watches every Node version throughout (no wrong
deletion, no label lost or corrupted); the CCM must never exit; its RSS is
sampled every 5 s and must grow less than 10 % from the first epoch after the
warm-up to the last (medians). Prints the checks and the RSS series, writes a
JSON file, and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from domain import labels
from tests.integration.ccm_process import CCMProcess
from tests.reliability.world import DECODING_MODES, TOKEN, World, leading, texts_holding
from tools.bench.cluster import bench_client
from tools.bench.plane import ManagedControlPlane
from tools.bench.procfs import MIB, ProcSample, Sampler, machine, machine_line
from tools.soak import cases

DEFAULT_OUT = Path("bench-results/soak.json")
#: Deletions in a soak are many and all legitimate: let the breaker allow them
#: (by default 10 % of the nodes per 10 min trip it, by design).
SOAK_CONFIG = "deletionRatePercent: 100\n"
CONVERGE_BOUND = 45.0
ISSUE_13_FAULTS = ("cross-pool move, pool lost", "XO bodies that break decoding")
SOAK_FLAGS = (
    "--node-monitor-period=5s",
    "--node-status-update-frequency=30s",
    "--kube-api-qps=50",
    "--kube-api-burst=100",
    "--v=2",
)
#: The soak's own CCM rides out a kube-apiserver restart; the last phase's CCMs
#: keep the fast timings (lease 4 s) so each handover takes seconds.
SLOW_LEADER_FLAGS = (
    "--leader-elect-lease-duration=30s",
    "--leader-elect-renew-deadline=20s",
    "--leader-elect-retry-period=2s",
)
RSS_GROWTH_LIMIT = 0.10


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def layout(nodes: int) -> list[tuple[str, str, bool, bool]]:
    out = []
    for i in range(nodes):
        pool = "a" if i % 3 else "b"
        if i % 20 == 7:
            out.append((f"{pool}-down-{i}", pool, True, False))
        elif i % 20 == 13:
            out.append((f"{pool}-halted-{i}", pool, False, False))
        else:
            out.append((f"{pool}-ready-{i}", pool, True, True))
    return out


class Soak:
    def __init__(self, world: World, plane: ManagedControlPlane, rng: random.Random) -> None:
        self.world = world
        self.plane = plane
        self.rng = rng
        self.actions: Counter[str] = Counter()
        self.epochs: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.faults = self._faults()

    # -- roles by state -------------------------------------------------------
    def _roles(self, running: bool | None, ready: bool | None) -> list[str]:
        out = []
        vms = self.world.xo.state.objects["VM"]
        prefix = f"{self.world.run}-"
        for name, member in self.world.members.items():
            vm = vms.get(member.vm)
            if vm is None or name not in self.world.watch.nodes:
                continue
            if running is not None and (vm["power_state"] == "Running") != running:
                continue
            if ready is not None and member.ready != ready:
                continue
            out.append(name.removeprefix(prefix))
        return out

    async def act(self) -> None:
        w, rng = self.world, self.rng
        roll = rng.random()
        if roll < 0.45:
            roles = self._roles(running=True, ready=None)
            if roles:
                role = rng.choice(roles)
                if rng.random() < 0.1:  # across pools: region changes too
                    other = "b" if w.member(role).pool == "a" else "a"
                    w.migrate(role, host=rng.choice(w.hosts[other]))
                    self.actions["migrate across pools"] += 1
                else:
                    w.migrate(role)
                    self.actions["migrate"] += 1
        elif roll < 0.6:
            roles = self._roles(running=True, ready=True)
            if roles:
                role = rng.choice(roles)
                w.stop_vm(role)
                await w.set_ready(role, False)
                self.actions["stop VM, node NotReady"] += 1
        elif roll < 0.75:
            roles = [r for r in self._roles(running=False, ready=False) if "-new-" not in r]
            if roles:
                role = rng.choice(roles)
                w.start_vm(role)
                await w.set_ready(role, True)
                self.actions["start VM, node Ready"] += 1
        elif roll < 0.87:
            roles = self._roles(running=True, ready=True)
            if roles:
                role = rng.choice(roles)
                await w.set_ready(role, False)
                w.delete_vm(role)
                self.actions["delete VM, node NotReady"] += 1
        else:
            await w.add_node(rng.choice("ab"))
            self.actions["new node"] += 1

    # -- faults -----------------------------------------------------------------
    def _faults(self) -> dict[str, tuple[Callable[[], Awaitable[object]], ...]]:
        xo = self.world.xo

        async def sync(fn: Callable[[], object]) -> None:
            fn()

        async def restart_apiserver() -> None:
            await asyncio.to_thread(self.plane.stop_apiserver, grace=2.0)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(self.plane.start_apiserver)

        async def nothing() -> None:
            return None

        dropping: list[asyncio.Task[None]] = []

        async def drop_streams() -> None:
            async def loop() -> None:
                while True:
                    xo.hub.drop_all()
                    await asyncio.sleep(1.0)

            dropping.append(asyncio.create_task(loop()))

        async def stop_dropping() -> None:
            for task in dropping:
                task.cancel()
            await asyncio.gather(*dropping, return_exceptions=True)
            dropping.clear()

        pool_b = self.world.pools["b"]
        moving: list[asyncio.Task[None]] = []

        async def move_then_lose_pool() -> None:
            """Issue 13 case 1: nodes moved from pool a to b, then XO loses b.
            The pool goes only once the CCM has seen the move (region b): a pool
            lost before that leaves the Node no trace of it."""
            w = self.world
            ready_in_a = [r for r in self._roles(True, True) if w.member(r).pool == "a"]
            movers = self.rng.sample(ready_in_a, min(3, len(ready_in_a)))
            for role in movers:
                w.migrate(role, host=self.rng.choice(w.hosts["b"]))
                self.actions["migrate across pools"] += 1

            def moved() -> bool:
                return all(
                    (view := w.watch.nodes.get(w.member(r).name)) is not None
                    and view.labels.get(labels.REGION) == pool_b
                    for r in movers
                )

            async def then_lose() -> None:
                try:
                    await w.watch.wait_for(moved, within=30)
                except TimeoutError:  # the churn stopped or deleted a mover meanwhile
                    log("cross-pool move: a mover's region never said b; pool kept")
                    return
                for role in movers:
                    await w.set_ready(role, False)
                xo.state.disconnect_pool(pool_b)
                self.actions["nodes moved, then their new pool lost"] += len(movers)

            moving.append(asyncio.create_task(then_lose()))

        async def reconnect_after_move() -> None:
            for task in moving:
                task.cancel()
            await asyncio.gather(*moving, return_exceptions=True)
            moving.clear()
            xo.state.reconnect_pool(pool_b)

        return {
            "cross-pool move, pool lost": (move_then_lose_pool, reconnect_after_move),
            "XO down": (xo.stop, xo.start),
            "50% XO 500s": (
                lambda: sync(lambda: xo.faults.set(error_rate=0.5, error_status=500)),
                lambda: sync(xo.faults.clear),
            ),
            "XO answers after 3 s": (
                lambda: sync(lambda: xo.faults.set(latency=3.0)),
                lambda: sync(xo.faults.clear),
            ),
            "XO bodies that break decoding": (
                lambda: sync(
                    lambda: xo.faults.set(garbage=self.rng.choice(DECODING_MODES), garble_frames=5)
                ),
                lambda: sync(xo.faults.clear),
            ),
            "garbage bodies": (
                lambda: sync(lambda: xo.faults.set(garbage=self.rng.choice(["html", "no-id"]))),
                lambda: sync(xo.faults.clear),
            ),
            "token revoked": (
                lambda: sync(lambda: xo.auth.revoke_token(TOKEN)),
                lambda: sync(lambda: xo.auth.add_token(token=TOKEN)),
            ),
            "pool disconnected": (
                lambda: sync(lambda: xo.state.disconnect_pool(pool_b)),
                lambda: sync(lambda: xo.state.reconnect_pool(pool_b)),
            ),
            "event streams dropped": (drop_streams, stop_dropping),
            "kube-apiserver restarted": (restart_apiserver, nothing),
        }

    # -- epochs --------------------------------------------------------------------
    async def epoch(self, index: int, seconds: float, fault: str) -> None:
        chaos = seconds * 0.6
        started = time.monotonic()
        before = sum(self.actions.values())
        inject, clear = self.faults[fault]
        fault_at, fault_for = chaos * 0.3, min(8.0, chaos * 0.4)
        injected = cleared = False
        while time.monotonic() - started < chaos:
            elapsed = time.monotonic() - started
            if not injected and elapsed >= fault_at:
                await inject()
                injected = True
            if injected and not cleared and elapsed >= fault_at + fault_for:
                await clear()
                cleared = True
            await self.act()
            await asyncio.sleep(self.rng.uniform(0.3, 1.2))
        if not cleared:
            await clear()
        quiet = time.monotonic()
        try:
            converged = round(await self.world.wait_converged(within=CONVERGE_BOUND), 1)
        except AssertionError:
            converged = None
            pending = self.world.unconverged()
            self.violations.append(
                f"epoch {index} ({fault}): {len(pending)} items still pending "
                f"{CONVERGE_BOUND:g}s after the churn stopped: {pending[:5]}"
            )
        rest = seconds - (time.monotonic() - started)
        if rest > 0:
            await asyncio.sleep(rest)
        self.epochs.append(
            {
                "epoch": index,
                "fault": fault,
                "actions": sum(self.actions.values()) - before,
                "converged_seconds_after_churn": converged,
                "quiet_started": round(quiet - started, 1),
                "nodes": len(self.world.watch.nodes),
            }
        )


def rss_growth(
    samples: Sequence[ProcSample], first: tuple[float, float], last: tuple[float, float]
) -> dict[str, Any]:
    def median_in(window: tuple[float, float]) -> float:
        values = [s.rss for s in samples if window[0] <= s.at <= window[1]]
        return statistics.median(values) if values else float("nan")

    base, final = median_in(first), median_in(last)
    return {
        "baseline_rss_mib": round(base / MIB, 1),
        "final_rss_mib": round(final / MIB, 1),
        "growth": round(final / base - 1, 4) if base else None,
        "peak_rss_mib": round(max(s.rss for s in samples) / MIB, 1),
        "hwm_mib": round(samples[-1].hwm / MIB, 1),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    duration = args.minutes * 60
    warmup = min(60.0, duration * 0.25)
    epoch_seconds = 60.0 if args.minutes >= 5 else 40.0
    epochs = max(2, int((duration - warmup) // epoch_seconds))
    plane = await asyncio.to_thread(ManagedControlPlane.create, audit=False)
    await asyncio.to_thread(plane.start)
    result: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    try:
        kube = await bench_client(plane.admin_kubeconfig, workers=16, name="soak")
        try:
            started = time.monotonic()
            world = await World.create(
                kube, plane.admin_kubeconfig, layout=layout(args.nodes), hosts_per_pool=3
            )
            try:
                result.update(await _run(world, plane, rng, warmup, epoch_seconds, epochs, started))
            finally:
                await world.aclose()
        finally:
            await kube.aclose()
    finally:
        await asyncio.to_thread(plane.stop)
    return result


async def _run(
    world: World,
    plane: ManagedControlPlane,
    rng: random.Random,
    warmup: float,
    epoch_seconds: float,
    epochs: int,
    started: float,
) -> dict[str, Any]:
    ccm = await world.start_ccm(
        *SOAK_FLAGS,
        *SLOW_LEADER_FLAGS,
        extra_config=SOAK_CONFIG,
        ready_within=60,
        token=f"{TOKEN}\n",  # issue 13 case 3: as `echo tok | base64` leaves it
    )
    assert ccm.proc is not None
    ready_at = time.monotonic()
    sampler = Sampler(ccm.proc.pid, every=5.0).start()
    log(f"{len(world.members)} nodes; CCM pid {ccm.proc.pid}; initializing them")
    initialized = await world.wait_converged(within=300)
    log(f"all initialized and converged in {initialized:.0f}s; warm-up {warmup:.0f}s of churn")
    runner = Soak(world, plane, rng)
    warm_end = time.monotonic() + warmup
    while time.monotonic() < warm_end:
        await runner.act()
        await asyncio.sleep(rng.uniform(0.3, 1.2))
    await world.wait_converged(within=CONVERGE_BOUND)
    fault_names = list(runner.faults)
    rng.shuffle(fault_names)
    # Issue 13's faults first, so even a short soak meets them.
    fault_names.sort(key=lambda name: name not in ISSUE_13_FAULTS)
    windows = []
    for index in range(epochs):
        fault = fault_names[index % len(fault_names)]
        begin = time.monotonic()
        log(f"epoch {index + 1}/{epochs}: churn with fault '{fault}'")
        await runner.epoch(index + 1, epoch_seconds, fault)
        windows.append((begin, time.monotonic()))
        e = runner.epochs[-1]
        log(
            f"epoch {index + 1}: {e['actions']} actions, converged "
            f"{e['converged_seconds_after_churn']}s after the churn, {e['nodes']} nodes, "
            f"CCM alive: {ccm.returncode is None}"
        )
    samples = await sampler.stop()
    alive = ccm.returncode is None
    if not alive:
        runner.violations.append(f"the CCM exited with {ccm.returncode}")
    if not await leading(ccm):
        runner.violations.append("the CCM is not leading at the end")
    review = await _last_phase(world, plane, runner, ccm) if alive else {}
    runner.violations += [f"a CCM exited with {c.returncode}" for c in world.crashed()]
    runner.violations += world.tracker.violations
    rss = rss_growth(samples, windows[0], windows[-1])
    if rss["growth"] is None or rss["growth"] >= RSS_GROWTH_LIMIT:
        runner.violations.append(
            f"RSS grew {rss['growth']:.1%} after warm-up (limit {RSS_GROWTH_LIMIT:.0%})"
        )
    t0 = samples[0].at
    return {
        "nodes": len(world.members),
        "setup_seconds": round(ready_at - started, 1),
        "initialization_seconds": round(initialized, 1),
        "warmup_seconds": warmup,
        "epoch_seconds": epoch_seconds,
        "epochs": runner.epochs,
        "actions": dict(runner.actions),
        "issue_13_phase": review,
        "invariant_checks": dict(world.tracker.checks),
        "violations": runner.violations,
        "ccm_alive": alive,
        "rss": rss,
        "rss_series_mib": [[round(s.at - t0), round(s.rss / MIB, 1)] for s in samples],
        "cpu_seconds": round(samples[-1].cpu - samples[0].cpu, 1),
        "log_tail": ccm.log[-3000:] if runner.violations else "",
    }


async def _last_phase(
    world: World, plane: ManagedControlPlane, runner: Soak, ccm: CCMProcess
) -> dict[str, Any]:
    """Issue 13's cases that replace the CCM process (:mod:`tools.soak.cases`)."""
    out: dict[str, Any] = {}
    try:
        log("last phase: the Lease answered with a non-JSON 200 (leader behind a proxy)")
        ccm, out["non-JSON 200 on the Lease"] = await cases.lease_not_json_case(
            world,
            plane,
            ccm,
            flags=SOAK_FLAGS,
            config=SOAK_CONFIG,
            act=runner.act,
            violations=runner.violations,
        )
        log(f"  {out['non-JSON 200 on the Lease']}")
        log("last phase: a restart storm under a cap of one deletion, then a dry run")
        ccm, out["restart storm, then dry run"] = await cases.breaker_cases(
            world,
            ccm,
            flags=SOAK_FLAGS,
            config=SOAK_CONFIG,
            ready_roles=runner._roles(running=True, ready=True),
            violations=runner.violations,
        )
        log(f"  {out['restart storm, then dry run']}")
    except (AssertionError, TimeoutError, RuntimeError) as err:
        runner.violations.append(f"last phase: {str(err).splitlines()[0]}")
    leaks = await texts_holding(world, TOKEN)
    if leaks:
        runner.violations.append(f"the XO token shows in {', '.join(leaks)}")
    out["token with a trailing newline"] = {"shown in": leaks or "nothing"}
    return out


def render(result: dict[str, Any]) -> str:
    lines = [machine_line(result["machine"])]
    lines.append(
        f"\nSoak: {result['nodes']} nodes (created over the run), "
        f"{len(result['epochs'])} epochs of {result['epoch_seconds']:g}s "
        f"after {result['warmup_seconds']:g}s of warm-up"
    )
    lines.append("\nepoch | fault                     | actions | converged after churn (s)")
    for e in result["epochs"]:
        conv = e["converged_seconds_after_churn"]
        lines.append(
            f"{e['epoch']:>5} | {e['fault']:<25} | {e['actions']:>7} | "
            f"{conv if conv is not None else 'NOT within ' + str(CONVERGE_BOUND)}"
        )
    lines.append(
        "\nactions: " + ", ".join(f"{k} {v}" for k, v in sorted(result["actions"].items()))
    )
    lines.append(
        "invariant checks: "
        + ", ".join(f"{k}: {v} checked" for k, v in sorted(result["invariant_checks"].items()))
        + f"; CCM never exited: {result['ccm_alive']}"
    )
    for case, figures in result.get("issue_13_phase", {}).items():
        lines.append(f"last phase, {case}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    rss = result["rss"]
    lines.append(
        f"RSS: {rss['baseline_rss_mib']} MiB (first epoch, median) -> {rss['final_rss_mib']} MiB "
        f"(last epoch, median): {rss['growth']:+.1%} (limit +{RSS_GROWTH_LIMIT:.0%}); "
        f"peak {rss['peak_rss_mib']} MiB; CPU {result['cpu_seconds']} s"
    )
    series = result["rss_series_mib"]
    step = max(1, len(series) // 20)
    lines.append("RSS over time (s: MiB): " + ", ".join(f"{t}: {m}" for t, m in series[::step]))
    if result["violations"]:
        lines.append("\nVIOLATIONS:")
        lines += [f"  - {v}" for v in result["violations"]]
    else:
        lines.append("\nno violation")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="churn duration (default 10)")
    parser.add_argument("--nodes", type=int, default=500, help="default 500")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    log(machine_line(machine()))
    result = asyncio.run(soak(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(render(result))
    print(f"\nresults: {args.out}")
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
