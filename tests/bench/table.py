"""The issue-16 table, this tree beside an earlier revision (``scripts/bench --baseline``).

Each row is measured for both builds in the same run, one after the other,
on the same control plane and fake XO (5 ms per XO request). The Go CCM's
figures cannot be measured here (its module is not served to this machine),
so each goal, set against the Go CCM, is translated into a ratio to the
revision the Go figures were compared with (87c6494, its figures in
:data:`ROWS`): a row is met when this tree / baseline, measured now, is at most
that ratio. Times are seconds from the first Node created to the last one
initialized; CPU is the CCM process's user+system seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from . import scenarios
from .builds import Build

QPS500 = ("--kube-api-qps=500", "--kube-api-burst=1000")


@dataclass(frozen=True)
class Row:
    """One line of the issue's table: what to run, what to read, and the goal."""

    key: str
    title: str
    go: float
    issue_base: float  # 87c6494's figure in the issue (same bench, one run)
    goal: float  # the goal in the row's unit (stated against the Go CCM)
    goal_text: str
    full_only: bool = False

    @property
    def target_ratio(self) -> float:
        """The goal as a ratio to 87c6494's figure."""
        return self.goal / self.issue_base


ROWS: tuple[Row, ...] = (
    Row("reg200", "200 nodes, default flags: all initialized (s)", 32.3, 29.0, 32.3, "<= Go"),
    Row("reg1000", "1,000 nodes, default flags (s)", 157.8, 149.2, 105.0, "<= 0.67x Go"),
    Row("reg200_1w", "200 nodes, QPS 500, 1 worker (s)", 31.3, 14.0, 31.3, "<= Go"),
    Row("reg200_10w", "200 nodes, QPS 500, 10 workers (s)", 5.6, 6.2, 4.48, "<= 0.8x Go"),
    Row("rest1000_cpu", "CPU s in 60 s at rest, 1,000 nodes", 0.10, 0.26, 0.10, "<= Go"),
    Row("rss200", "RSS at 200 nodes (MiB)", 64, 74, 74, "<= 87c6494"),
    Row("rss1000", "RSS at 1,000 nodes (MiB)", 75, 77, 77, "<= 87c6494"),
    Row("xo_per_node", "XO requests per node, 1,000-node burst", 3.0, 1.03, 0.1, "<= 0.1"),
    Row("reg5000_10w", "5,000 nodes, QPS 500, 10 workers (s)", 156.2, 183.6, 156.2, "<= Go", True),
    Row("rest5000_cpu", "CPU s in 60 s at rest, 5,000 nodes", 0.13, 1.16, 0.13, "<= Go", True),
    Row("rss5000", "RSS at rest, 5,000 nodes (MiB)", 123, 95, 95, "<= 87c6494", True),
)

Measure = Callable[[], Awaitable[dict[str, Any]]]


def plan(
    env: scenarios.BenchEnv,
    build: Build,
    *,
    full: bool,
    window: float,
    rows: Collection[str] = (),
) -> list[tuple[str, Measure, dict[str, Callable[[dict[str, Any]], float]]]]:
    """The runs for one build: (label, run, {row key: how to read it from the result});
    only those that measure one of ``rows`` when given."""

    def reg(nodes: int, flags: tuple[str, ...]) -> Measure:
        return lambda: scenarios.registration(env, nodes=nodes, flags=flags, build=build)

    def rest(nodes: int) -> Measure:
        return lambda: scenarios.footprint(env, nodes=nodes, window=window, build=build)

    def seconds(r: dict[str, Any]) -> float:
        return float(r["all_initialized_seconds"])

    def rss(r: dict[str, Any]) -> float:
        return float(r["ccm"]["peak_rss_mib"] if "ccm" in r else r["peak_rss_mib"])

    def cpu_per_minute(r: dict[str, Any]) -> float:
        return round(r["cpu_seconds"] * 60.0 / r["window_seconds"], 3)

    runs: list[tuple[str, Measure, dict[str, Callable[[dict[str, Any]], float]]]] = [
        ("registration 200, defaults", reg(200, ()), {"reg200": seconds, "rss200": rss}),
        (
            "registration 1000, defaults",
            reg(1000, ()),
            {"reg1000": seconds, "xo_per_node": lambda r: float(r["xo_requests_per_node"])},
        ),
        (
            "registration 200, qps 500, 1 worker",
            reg(200, (*QPS500, "--concurrent-node-syncs=1")),
            {"reg200_1w": seconds},
        ),
        (
            "registration 200, qps 500, 10 workers",
            reg(200, (*QPS500, "--concurrent-node-syncs=10")),
            {"reg200_10w": seconds},
        ),
        ("at rest 1000", rest(1000), {"rest1000_cpu": cpu_per_minute, "rss1000": rss}),
    ]
    if full:
        runs += [
            (
                "registration 5000, qps 500, 10 workers",
                reg(5000, (*QPS500, "--concurrent-node-syncs=10")),
                {"reg5000_10w": seconds},
            ),
            ("at rest 5000", rest(5000), {"rest5000_cpu": cpu_per_minute, "rss5000": rss}),
        ]
    if rows:
        runs = [run for run in runs if set(run[2]) & set(rows)]
    return runs


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def medians(readings: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Each build's row figures: the median of its readings (``--repeat``)."""
    return {
        build: {key: statistics.median(values) for key, values in keys.items() if values}
        for build, keys in readings.items()
    }


def compare(
    measured: dict[str, dict[str, float]],
    this: str,
    base: str,
    readings: dict[str, dict[str, list[float]]] | None = None,
) -> list[dict[str, Any]]:
    """Each row: both figures (medians when repeated, every reading kept), this /
    baseline, the target ratio, met or not."""
    out = []
    for row in ROWS:
        mine, theirs = measured.get(this, {}).get(row.key), measured.get(base, {}).get(row.key)
        ratio = mine / theirs if mine is not None and theirs else None
        out.append(
            {
                "readings": {
                    build: (readings or {}).get(build, {}).get(row.key, [])
                    for build in (this, base)
                },
                "key": row.key,
                "title": row.title,
                "go": row.go,
                "issue_87c6494": row.issue_base,
                "goal": f"{row.goal_text} ({row.goal:g})",
                "target_ratio": round(row.target_ratio, 3),
                "this": mine,
                "baseline": theirs,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "met": None if ratio is None else ratio <= row.target_ratio,
            }
        )
    return out


def render(rows: list[dict[str, Any]], this: str, base: str) -> str:
    from .run import table

    cells = [
        [
            r["title"],
            _fmt(r["go"]),
            _fmt(r["issue_87c6494"]),
            r["goal"],
            f"{r['target_ratio']:.2f}x",
            _fmt(r["baseline"]),
            _fmt(r["this"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            {True: "MET", False: "MISSED", None: "not run"}[r["met"]],
        ]
        for r in rows
    ]
    headers = [
        "row",
        "Go (issue)",
        "87c6494 (issue)",
        "goal",
        "goal / 87c6494",
        f"{base} now",
        f"{this} now",
        "now ratio",
        "",
    ]
    return table(headers, cells)
