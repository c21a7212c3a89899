"""Run the benchmarks: ``python -m tools.bench.run [--nodes N] [--full] [--out FILE]``
(``scripts/bench`` does the set-up first).

Default run (about 5 minutes on 2 cores): registration of ``--nodes`` (200)
at default flags, 200 nodes at ``--kube-api-qps=500`` (with 1 and with 10
workers), reaction times, steady-state passes at 100, 1,000 and 5,000 VMs,
footprint at 1,000 nodes. ``--full`` adds registration of 1,000 nodes and the
footprint at 5,000 nodes (about 5 minutes more). Prints tables and the targets
(met or missed, by how much), writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from . import router, scenarios
from .builds import THIS_TREE
from .procfs import machine, machine_line

DEFAULT_OUT = Path("bench-results/results.json")
PHASES = ("registration", "reaction", "steady", "footprint", "router")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--nodes", type=int, default=200, help="registration size (default 200)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also 1,000-node registration and the 5,000-node footprint",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument(
        "--xo-latency",
        type=float,
        default=0.005,
        help="seconds injected before every XO answer (default 0.005)",
    )
    parser.add_argument(
        "--window", type=float, default=60.0, help="footprint window in seconds (default 60)"
    )
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default all)",
    )
    parser.add_argument(
        "--steady-sizes", default="100,1000,5000", help="VM counts of the steady-state passes"
    )
    parser.add_argument(
        "--baseline",
        nargs="?",
        const="87c6494",
        default=None,
        metavar="REV",
        help="run the issue-16 table for this tree and REV (default 87c6494) side by side "
        "(with --full: the 5,000-node rows too) instead of the phases",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: profile a registration at QPS 500 (cProfile, every thread; with "
        "--baseline for REV too), the top functions to bench-results/profile-*.txt",
    )
    parser.add_argument(
        "--profile-nodes", type=int, default=1000, help="nodes of the profiled registration"
    )
    parser.add_argument(
        "--rows",
        default="",
        help="with --baseline: only the runs measuring these row keys (comma-separated, "
        "e.g. reg5000_10w,rest5000_cpu,rss5000; see tools/bench/table.py)",
    )
    parser.add_argument(
        "--table",
        choices=("16", "29"),
        default="16",
        help="with --baseline: the issue whose rows to measure (16: against the Go CCM's "
        "figures; 29: CPU per node, workers sized, lone joins and memory against REV)",
    )
    parser.add_argument(
        "--go-ccm",
        default=None,
        metavar="BIN",
        help="with --baseline: the Go CCM's binary (built from its source: `go build "
        "./cmd/xenorchestra-cloud-controller-manager`), measured in the same runs, a "
        "column of its own (the goals stay the baseline's)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="with --baseline: measure each run N times, the builds taking turns, and "
        "compare the medians (a 1-second row moves by 10 %% between runs on 2 shared cores)",
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = only - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phase(s): {', '.join(sorted(unknown))}")
    steady_sizes = sorted(int(s) for s in args.steady_sizes.split(","))
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg_at_start": os.getloadavg(),
        "phase_seconds": {},
        "registration": [],
        "steady_state": [],
        "footprint": [],
        "router": [],
    }

    async def phase(name: str, work: Callable[[], Awaitable[Any]]) -> Any:
        log(f"{name} ...")
        started = time.monotonic()
        value = await work()
        seconds = round(time.monotonic() - started, 1)
        results["phase_seconds"][name] = seconds
        log(f"{name}: done in {seconds}s")
        return value

    build = THIS_TREE.with_runtime()  # what a Pod runs: the locked runtime install
    async with scenarios.bench_env(latency=args.xo_latency) as env:
        if "registration" in only:
            runs: list[tuple[str, int, list[str]]] = [
                (f"registration {args.nodes} nodes, default flags", args.nodes, [])
            ]
            if args.full and args.nodes < 1000:
                runs.append(("registration 1000 nodes, default flags", 1000, []))
            runs += [
                ("registration 200 nodes, qps 500", 200, ["--kube-api-qps=500"]),
                (
                    "registration 200 nodes, qps 500, 10 workers",
                    200,
                    ["--kube-api-qps=500", "--concurrent-node-syncs=10"],
                ),
            ]
            for title, count, flags in runs:
                row = await phase(
                    title,
                    lambda count=count, flags=flags: scenarios.registration(
                        env, nodes=count, flags=flags, build=build
                    ),
                )
                row["title"] = title
                results["registration"].append(row)
        if "reaction" in only:
            results["reaction"] = await phase("reaction", lambda: scenarios.reaction(env))
        small = [s for s in steady_sizes if s <= 1000]
        large = [s for s in steady_sizes if s > 1000]
        if "steady" in only and small:
            results["steady_state"] += await phase(
                f"steady state {small}", lambda: scenarios.steady_state(env, sizes=small)
            )
        if "footprint" in only:
            results["footprint"].append(
                await phase(
                    "footprint 1000 nodes",
                    lambda: scenarios.footprint(env, nodes=1000, window=args.window, build=build),
                )
            )
        if "steady" in only and large:
            results["steady_state"] += await phase(
                f"steady state {large}", lambda: scenarios.steady_state(env, sizes=large)
            )
        if "footprint" in only and args.full:
            results["footprint"].append(
                await phase(
                    "footprint 5000 nodes",
                    lambda: scenarios.footprint(env, nodes=5000, window=args.window, build=build),
                )
            )
    if "router" in only:
        results["router"] = await phase("change router cost", router.router_costs)
    results["loadavg_at_end"] = os.getloadavg()
    results["targets"] = targets(results)
    return results


# -- targets ----------------------------------------------------------------------
def _target(name: str, met: bool | None, measured: str, note: str = "") -> dict[str, Any]:
    return {"target": name, "met": met, "measured": measured, "note": note}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    default_regs = [r for r in results["registration"] if not r["flags"]]
    if default_regs:
        reg = max(default_regs, key=lambda r: r["nodes"])
        excess = reg["ratio_to_floor"] - 1
        burst_floor = reg["api_rate_floor_with_burst_seconds"]
        with_burst = reg["all_initialized_seconds"] / burst_floor - 1 if burst_floor else 0.0
        scope = "" if reg["nodes"] >= 1000 else f" (measured at {reg['nodes']}; --full for 1,000)"
        out.append(
            _target(
                "1,000 nodes initialized within 10% of the API-rate floor (default flags)",
                excess <= 0.10,
                f"{reg['all_initialized_seconds']}s vs floor {reg['api_rate_floor_seconds']}s "
                f"({reg['kube_requests_per_node']} req/node x {reg['nodes']} / "
                f"{reg['kube_api_qps']:g} qps): {excess:+.1%}; vs the floor less the burst "
                f"({reg['api_rate_floor_with_burst_seconds']}s): {with_burst:+.1%}{scope}",
            )
        )
    for reg in results["registration"]:
        if reg["flags"] and reg["nodes"] == 200:
            p99 = reg["taint_removal_delay_seconds"]["p99"]
            out.append(
                _target(
                    f"p99 taint-removal delay < 2 s at 200 nodes ({' '.join(reg['flags'])})",
                    p99 < 2.0,
                    f"p99 {p99}s, max {reg['taint_removal_delay_seconds']['max']}s, "
                    f"all in {reg['all_initialized_seconds']}s (floor "
                    f"{reg['api_rate_floor_seconds']}s)",
                    "" if p99 < 2.0 else f"missed by {p99 - 2.0:.2f}s",
                )
            )
    if results["steady_state"]:
        worst = max(
            row[f"{p}_{a}"]["xo_requests"]
            for row in results["steady_state"]
            for p in ("label_sync", "address_sync")
            for a in ("converge", "noop")
        )
        sizes = ", ".join(str(r["vms"]) for r in results["steady_state"])
        out.append(
            _target(
                "at most 3 XO requests per sync pass at any N",
                worst <= 3,
                f"max {worst} per pass at {sizes} VMs",
            )
        )
        noop = max(
            row[f"{p}_noop"]["kube_writes"]
            for row in results["steady_state"]
            for p in ("label_sync", "address_sync")
        )
        foot_writes = [f["kube_writes_in_window"] for f in results["footprint"]]
        foot = (
            f"; CCM process over each footprint window: {foot_writes} writes" if foot_writes else ""
        )
        out.append(
            _target(
                "0 Kubernetes writes when nothing changed",
                noop == 0 and all(w == 0 for w in foot_writes),
                f"{noop} writes per no-op pass{foot}",
            )
        )
    if "reaction" in results:
        mig = results["reaction"]["migration_to_zone_label_seconds"]
        out.append(
            _target(
                "a migration reflected in < 2 s with events on",
                mig["max"] < 2.0,
                f"p50 {mig['p50']}s, max {mig['max']}s over {mig['count']} migrations",
            )
        )
    for foot in results["footprint"]:
        if foot["nodes"] == 5000:
            out.append(
                _target(
                    "peak RSS < 200 MiB at 5,000 nodes",
                    foot["peak_rss_mib"] < 200,
                    f"{foot['peak_rss_mib']} MiB in the window, {foot['hwm_since_start_mib']} "
                    "MiB since start",
                    ""
                    if foot["peak_rss_mib"] < 200
                    else f"missed by {foot['peak_rss_mib'] - 200:.1f} MiB",
                )
            )
    by_size = {r["nodes"]: r for r in results.get("router") or []}
    if 5000 in by_size:
        big = by_size[5000]
        out.append(
            _target(
                "change router < 0.1 ms per XO event at 5,000 nodes",
                big["mean_ms"] < 0.1,
                f"{big['mean_ms'] * 1000:.1f} us mean, {big['p99_ms'] * 1000:.1f} us p99",
            )
        )
        if 1000 in by_size:
            ratio = big["mean_ms"] / by_size[1000]["mean_ms"]
            out.append(
                _target(
                    "change router O(1): cost at 5,000 nodes / at 1,000 < 1.5",
                    ratio < 1.5,
                    f"{ratio:.2f}",
                )
            )
    if not any(f["nodes"] == 5000 for f in results["footprint"]) and results["footprint"]:
        out.append(
            _target(
                "peak RSS < 200 MiB at 5,000 nodes",
                None,
                f"not measured (--full); at 1,000 nodes: {results['footprint'][0]['peak_rss_mib']}"
                " MiB",
            )
        )
    return out


# -- tables -----------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in results["loadavg_at_start"])
    parts = [machine_line(results["machine"]) + f"; load average at start {load}"]
    if results["registration"]:
        rows = []
        for r in results["registration"]:
            d = r["taint_removal_delay_seconds"]
            rows.append(
                [
                    r["nodes"],
                    " ".join(r["flags"]) or "defaults",
                    r["all_initialized_seconds"],
                    r["api_rate_floor_seconds"],
                    f"{r['ratio_to_floor']:.2f}",
                    d["p50"],
                    d["p95"],
                    d["p99"],
                    d["max"],
                    r["xo_requests_per_node"],
                    r["kube_requests_per_node"],
                    r["ccm"]["peak_rss_mib"],
                    f"{r['cpu_seconds_per_node'] * 1000:.2f}",
                ]
            )
        parts.append(
            "\nRegistration (nodes created at once, uninitialized taint; delays in seconds)\n"
            + table(
                [
                    "nodes",
                    "flags",
                    "all init s",
                    "floor s",
                    "x floor",
                    "p50",
                    "p95",
                    "p99",
                    "max",
                    "XO req/node",
                    "K8s req/node",
                    "CCM RSS MiB",
                    "CCM CPU ms/node",
                ],
                rows,
            )
        )
    if results["steady_state"]:
        rows = []
        for r in results["steady_state"]:
            rows.append(
                [
                    r["vms"],
                    r["label_sync_noop"]["xo_requests"],
                    r["address_sync_noop"]["xo_requests"],
                    r["label_sync_noop"]["kube_writes"],
                    r["address_sync_noop"]["kube_writes"],
                    sum(r["label_sync_noop"]["kube_requests"].values())
                    + sum(r["address_sync_noop"]["kube_requests"].values()),
                    r["label_sync_noop"]["seconds"],
                    r["address_sync_noop"]["seconds"],
                    r["label_sync_converge"]["kube_writes"]
                    + r["address_sync_converge"]["kube_writes"],
                    r["setup"].get("create_nodes_seconds", "-"),
                ]
            )
        parts.append(
            "\nSteady state (per pass; in-process services on the real adapters)\n"
            + table(
                [
                    "VMs=nodes",
                    "XO req label pass",
                    "XO req addr pass",
                    "K8s writes label no-op",
                    "K8s writes addr no-op",
                    "K8s req (any) no-op",
                    "label pass s",
                    "addr pass s",
                    "writes 1st pass",
                    "setup create s",
                ],
                rows,
            )
        )
    if "reaction" in results:
        r = results["reaction"]
        m, d = r["migration_to_zone_label_seconds"], r["vm_deleted_to_node_deleted_seconds"]
        parts.append(
            "\nReaction (seconds)\n"
            + table(
                ["what", "samples", "p50", "max", "note"],
                [
                    ["VM migrated -> zone label", m["count"], m["p50"], m["max"], "XO events on"],
                    [
                        "VM deleted (node NotReady) -> node deleted",
                        d["count"],
                        d["p50"],
                        d["max"],
                        f"deletionConfirmDelay {r['deletion_confirm_delay_seconds']:g}s",
                    ],
                ],
            )
        )
    if results["footprint"]:
        rows = [
            [
                f["nodes"],
                f["window_seconds"],
                f["peak_rss_mib"],
                f["median_rss_mib"],
                f["hwm_since_start_mib"],
                f["cpu_seconds"],
                f["cpu_percent_of_one_core"],
                f["kube_writes_in_window"],
                sum(f["kube_requests_in_window"].values()),
                sum(f["xo_requests_in_window"].values()),
                f["node_status_update_frequency"],
            ]
            for f in results["footprint"]
        ]
        parts.append(
            "\nFootprint (CCM process over a steady window)\n"
            + table(
                [
                    "nodes",
                    "window s",
                    "peak RSS MiB",
                    "median RSS MiB",
                    "HWM since start MiB",
                    "CPU s",
                    "CPU %",
                    "K8s writes",
                    "K8s req",
                    "XO req",
                    "sync period",
                ],
                rows,
            )
        )
    if results.get("router"):
        rows = [
            [r["nodes"], r["events"], r["mean_ms"] * 1000, r["p50_ms"] * 1000, r["p99_ms"] * 1000]
            for r in results["router"]
        ]
        parts.append(
            "\nChange router, per XO event\n"
            + table(["nodes", "events", "mean us", "p50 us", "p99 us"], rows)
        )
    rows = [
        [
            {True: "MET", False: "MISSED", None: "n/a"}[t["met"]],
            t["target"],
            t["measured"] + (f" ({t['note']})" if t["note"] else ""),
        ]
        for t in results["targets"]
    ]
    parts.append("\nTargets\n" + table(["", "target", "measured"], rows))
    parts.append(
        "\nPhase durations (s): "
        + ", ".join(f"{k} {v}" for k, v in results["phase_seconds"].items())
    )
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    log(machine_line(machine()))
    if args.baseline or args.profile:
        from . import compare

        results = asyncio.run(compare.run(args))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(compare.render(results))
        print(f"\nresults: {args.out}")
        return 0
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render(results))
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
