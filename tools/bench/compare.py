"""``scripts/bench --baseline [REV]`` and ``scripts/bench --profile``.

``--baseline``: the rows of :mod:`tools.bench.table` for this tree and for REV
(default 87c6494), each row's two runs back to back, printed with their ratio
and the goal translated to a ratio of REV. ``--profile`` (instead of the table):
a 1,000-node registration at QPS 500 under cProfile (every thread), for this
tree (and REV with ``--baseline``); the top functions go to
``bench-results/profile-*.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from . import scenarios, table
from .builds import THIS_TREE, Build, baseline, go_ccm
from .procfs import machine, machine_line
from .profiled import top

PROFILE_DIR = Path("bench-results/profile")


def _log(message: str) -> None:
    from .run import log

    log(message)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    builds = [THIS_TREE]
    if args.baseline:
        builds.append(baseline(args.baseline))
    if getattr(args, "go_ccm", None):
        builds.append(go_ccm(Path(args.go_ccm)))
    _log("production installs of each build's lock file ...")
    builds = [b.with_runtime() for b in builds]
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg_at_start": os.getloadavg(),
        "builds": [b.name for b in builds],
        "runs": [],
    }
    async with scenarios.bench_env(latency=args.xo_latency) as env:
        if args.profile:
            results["profiles"] = await _profiles(env, builds, args)
        else:
            results["table"] = await _table(env, builds, args, results["runs"])
    results["loadavg_at_end"] = os.getloadavg()
    return results


async def _table(
    env: scenarios.BenchEnv, builds: list[Build], args: argparse.Namespace, runs: list[Any]
) -> list[dict[str, Any]]:
    readings: dict[str, dict[str, list[float]]] = {b.name: {} for b in builds}
    chosen = table.TABLES[getattr(args, "table", "16")]
    rows = [r.strip() for r in (args.rows or "").split(",") if r.strip()]
    unknown = set(rows) - {row.key for row in chosen}
    if unknown:
        raise SystemExit(f"unknown row(s): {', '.join(sorted(unknown))}")
    wanted = rows or [row.key for row in chosen if args.full or not row.full_only]
    plans = [
        table.plan(env, b, full=args.full or bool(rows), window=args.window, rows=wanted)
        for b in builds
    ]
    repeat = max(1, getattr(args, "repeat", 1))
    labels = [{label: (measure, readers) for label, measure, readers in p} for p in plans]
    for label, _, _ in plans[0]:  # each row: this tree, then the baseline, then Go
        for turn in range(1, repeat + 1):
            for build, runs_of in zip(builds, labels, strict=True):
                if label not in runs_of:
                    continue  # the Go CCM has no Python imports to measure
                measure, readers = runs_of[label]
                shown = f"{label} ({turn}/{repeat})" if repeat > 1 else label
                _log(f"{build.name}: {shown} ...")
                started = time.monotonic()
                result = await measure()
                _log(f"{build.name}: {shown}: done in {time.monotonic() - started:.0f}s")
                runs.append({"build": build.name, "label": label, "turn": turn, "result": result})
                for key, read in readers.items():
                    readings[build.name].setdefault(key, []).append(read(result))
    go = next((b.name for b in builds if b.binary is not None), None)
    return table.compare(
        table.medians(readings), builds[0].name, builds[1].name, readings, chosen, go=go
    )


async def _profiles(
    env: scenarios.BenchEnv, builds: list[Build], args: argparse.Namespace
) -> list[dict[str, Any]]:
    out = []
    for build in builds:
        profiled = dataclasses.replace(build, profile_dir=PROFILE_DIR)
        nodes = args.profile_nodes
        _log(f"{build.name}: profiling a {nodes}-node registration at QPS 500 ...")
        reg = await scenarios.registration(env, nodes=nodes, flags=table.QPS500, build=profiled)
        out.append(
            _report(
                build,
                "registration",
                reg,
                f"{nodes} nodes, {' '.join(table.QPS500)}, all initialized in "
                f"{reg['all_initialized_seconds']}s, CCM CPU {reg['ccm']['cpu_seconds']}s "
                f"({reg['cpu_seconds_per_node'] * 1000:.2f} ms per node)",
            )
        )
        _log(f"{build.name}: profiling {nodes} nodes at rest ...")
        rest = await scenarios.footprint(env, nodes=nodes, window=args.window, build=profiled)
        out.append(
            _report(
                build,
                "at-rest",
                rest,
                f"{nodes} initialized nodes, start + {rest['window_seconds']}s at rest "
                f"(--node-status-update-frequency={rest['node_status_update_frequency']}), CCM "
                f"CPU {rest['cpu_seconds']}s in the window",
            )
        )
    return out


def _report(build: Build, what: str, result: dict[str, Any], summary: str) -> dict[str, Any]:
    report = PROFILE_DIR.parent / f"profile-{build.name}-{what}.txt"
    text = (
        f"{build.name}, {what}: {summary}. cProfile slows the process: compare shares, "
        "not seconds.\n\n"
        f"-- by own time\n{top(result['profile'], limit=30)}\n"
        f"-- by cumulative time\n{top(result['profile'], limit=30, sort='cumulative')}"
    )
    report.write_text(text, encoding="utf-8")
    return {"build": build.name, "what": what, "report": str(report), "result": result}


def _repeat(results: dict[str, Any]) -> int:
    try:
        return int(results["args"].get("repeat", "1"))
    except (KeyError, ValueError):
        return 1


def _peers(result: dict[str, Any]) -> str:
    """The others' CPU in the run, and the time it leaves as a floor."""
    peers = result.get("peers_cpu_seconds")
    if not peers:
        return ""
    spent = ", ".join(f"{name} {cpu:.2f} s" for name, cpu in peers.items())
    return (
        f"; meanwhile {spent} of CPU: {result['peers_floor_seconds']:.2f} s on "
        f"{os.cpu_count()} cores with no CCM at all (run: {result['all_initialized_seconds']} s)"
    )


def render(results: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in results["loadavg_at_start"])
    parts = [machine_line(results["machine"]) + f"; load average at start {load}"]
    if "table" in results:
        this, base, *go = results["builds"]
        parts.append(
            f"\nThis tree vs {base} (same run, each on the production install of its lock; "
            "goal / base: the goal as a ratio of the baseline measured now (for issue 16, "
            "the Go CCM goal as a ratio of 87c6494's figure in the issue); met when now "
            "ratio <= it, or the figure <= an absolute goal; below the floor: the goal is "
            "less than the control plane alone took over the cores, so a CCM using no CPU "
            "at all would miss it on this machine"
            + (f"; medians of {repeat} runs each" if (repeat := _repeat(results)) > 1 else "")
            + ")\n"
            + table.render(results["table"], this, base, go[0] if go else None)
        )
        regs = [r for r in results["runs"] if "cpu_seconds_per_node" in r["result"]]
        lines = [
            f"  {r['build']}: {r['label']}: {r['result']['cpu_seconds_per_node'] * 1000:.2f} ms "
            f"CPU per initialized node, {r['result']['kube_budget_requests_per_node']} API "
            "requests per node in the --kube-api-qps budget"
            + (
                " (events included)"
                if r["result"]["kube_budget_requests_per_node"]
                == r["result"]["kube_requests_per_node"]
                else f" (+{r['result']['event_requests_per_node']} events on their own budget)"
            )
            + _peers(r["result"])
            for r in regs
        ]
        parts.append("\nCPU per initialized node (CCM process)\n" + "\n".join(lines))
    for profile in results.get("profiles", []):
        text = Path(profile["report"]).read_text(encoding="utf-8")
        head = "\n".join(text.splitlines()[:22])
        parts.append(f"\nProfile ({profile['report']}, top by own time)\n{head}")
    parts.append(
        f"\nload average at end {', '.join(f'{x:.2f}' for x in results['loadavg_at_end'])}"
    )
    return "\n".join(parts)
