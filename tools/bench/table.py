"""The issues' tables, this tree beside an earlier revision (``scripts/bench --baseline``).

Each row is measured for both builds in the same run, one after the other, on the
same control plane and fake XO (5 ms per XO request), each build on the production
install of its own lock file (``builds.Build.with_runtime``). A row's goal is one of:

- against the Go CCM (issue 16): the goal is translated into a ratio to the revision
  the issue's Go figures were compared with (87c6494, its figures in the row); the
  Go CCM itself is measured only when its binary is given (``--go-ccm``: its module
  is not served to this machine), a column beside the goal, never the goal's base;
- a ratio to the baseline revision measured now (issue 29: "half the CPU of 4a6c53b");
- an absolute figure of this tree (the first lone join within 2x of the p50).

Times are seconds from the first Node created to the last one initialized; CPU is
the CCM process's user+system seconds.
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
    """One line of an issue's table: what to read, and the goal.

    ``go``/``issue_base``: the Go CCM's and 87c6494's figures in issue 16 (None for
    the other kinds); ``ratio``: the goal as this / baseline now; ``absolute``: the
    goal is ``goal`` itself, of this tree alone; ``reference``: no goal, a figure to
    read the rows above it by (never met nor missed); ``floor``: the key of the
    reference row that bounds this one (the control plane alone over the cores), so a
    goal below it reads as out of this machine's reach, not as the CCM's shortfall."""

    key: str
    title: str
    go: float | None
    issue_base: float | None
    goal: float
    goal_text: str
    full_only: bool = False
    ratio: float | None = None
    absolute: bool = False
    reference: bool = False
    floor: str | None = None

    def out_of_reach(self, floor: float | None, theirs: float | None) -> bool:
        """Whether the goal, in the row's unit, is below ``floor``: the time the run
        could not go below even with a CCM that used no CPU at all."""
        target = self.target_ratio
        if floor is None or not theirs or target is None:
            return False
        return floor > target * theirs

    @property
    def target_ratio(self) -> float | None:
        """The goal as a ratio to the baseline (None: an absolute goal, or none)."""
        if self.absolute or self.reference:
            return None
        if self.ratio is not None:
            return self.ratio
        assert self.issue_base is not None
        return self.goal / self.issue_base

    def met(self, mine: float | None, theirs: float | None) -> bool | None:
        if mine is None or self.reference:
            return None
        if self.absolute:
            return mine <= self.goal
        if not theirs:
            return None
        target = self.target_ratio
        return target is not None and mine / theirs <= target


ISSUE16: tuple[Row, ...] = (
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


def _keep(key: str, title: str) -> Row:
    """A row whose goal is to lose no ground: at most 5 % worse than the baseline."""
    return Row(key, title, None, None, 1.05, "<= 1.05x base", ratio=1.05)


def _floor(key: str) -> Row:
    """The time the run above it could not go below with a CCM of no CPU at all: what
    kube-apiserver, etcd and the node creator spent meanwhile, over the machine's cores."""
    title = "  the control plane alone, over the cores (s)"
    return Row(key, title, None, None, 0.0, "reference", reference=True)


#: Issue 29 against 4a6c53b (and issue 28's memory goals, absolute).
ISSUE29: tuple[Row, ...] = (
    _keep("reg200", "200 nodes, default flags (s)"),
    _keep("reg1000", "1,000 nodes, default flags (s)"),
    Row(
        "reg200_10w",
        "200 nodes, QPS 500, 10 workers (s)",
        None,
        None,
        0.6,
        "<= 0.6x base",
        ratio=0.6,
        floor="floor200_10w",
    ),
    _floor("floor200_10w"),
    Row(
        "cpu200_10w",
        "  CPU ms per node, QPS 500, 10 workers",
        None,
        None,
        0.5,
        "<= 0.5x base",
        ratio=0.5,
    ),
    Row(
        "reg200_auto",
        "200 nodes, QPS 500, workers sized by the CCM (s)",
        None,
        None,
        0.6,
        "<= 0.6x base",
        ratio=0.6,
        floor="floor200_auto",
    ),
    _floor("floor200_auto"),
    _keep("cpu200_auto", "  CPU ms per node, QPS 500, workers sized"),
    _keep("join_p50", "one node joining alone: p50 of ten (s)"),
    Row(
        "first_over_p50", "  the first of the ten / the p50", None, None, 2.0, "<= 2", absolute=True
    ),
    Row(
        "rss_imports",
        "RSS after the controller's imports (MiB)",
        None,
        None,
        62.0,
        "<= 62",
        absolute=True,
    ),
    _keep("rss_start", "RSS after start, no node (MiB)"),
    Row("rss200", "RSS at 200 nodes (MiB)", None, None, 68.0, "<= 68", absolute=True),
    _keep("rss1000", "RSS at 1,000 nodes (MiB)"),
    _keep("rest1000_cpu", "CPU s in 60 s at rest, 1,000 nodes"),
)

TABLES: dict[str, tuple[Row, ...]] = {"16": ISSUE16, "29": ISSUE29}
#: the default table (``--table``)
ROWS = ISSUE16

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

    def cpu_ms_per_node(r: dict[str, Any]) -> float:
        return round(float(r["cpu_seconds_per_node"]) * 1000, 3)

    def peers_floor(r: dict[str, Any]) -> float:
        return float(r["peers_floor_seconds"])

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
            {"reg200_10w": seconds, "cpu200_10w": cpu_ms_per_node, "floor200_10w": peers_floor},
        ),
        (
            "registration 200, qps 500, workers sized by the CCM",
            reg(200, QPS500),
            {"reg200_auto": seconds, "cpu200_auto": cpu_ms_per_node, "floor200_auto": peers_floor},
        ),
        (
            "ten lone joins, 2 s apart",
            lambda: scenarios.lone_joins(env, build=build),
            {
                "join_p50": lambda r: float(r["p50_s"]),
                "first_over_p50": lambda r: round(r["first_s"] / r["p50_s"], 2),
                "rss_start": lambda r: float(r["rss_after_start_mib"]),
            },
        ),
        ("at rest 1000", rest(1000), {"rest1000_cpu": cpu_per_minute, "rss1000": rss}),
        (
            "imports of the controller process",
            lambda: scenarios.import_footprint(build=build),
            {"rss_imports": lambda r: float(r["rss_imports_mib"])},
        ),
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
    if build.binary is not None:  # the Go CCM: no interpreter, no imports
        runs = [run for run in runs if "rss_imports" not in run[2]]
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
    rows: tuple[Row, ...] = ROWS,
    *,
    go: str | None = None,
) -> list[dict[str, Any]]:
    """Each row: both figures (medians when repeated, every reading kept), this /
    baseline, the goal, met or not; with ``go`` (the Go CCM's build, ``--go-ccm``), its
    figure and this / Go too (a figure beside the goal, which stays the baseline's)."""
    out = []
    for row in rows:
        mine, theirs = measured.get(this, {}).get(row.key), measured.get(base, {}).get(row.key)
        ratio = mine / theirs if mine is not None and theirs else None
        golang = measured.get(go, {}).get(row.key) if go else None
        target = row.target_ratio
        floor = measured.get(this, {}).get(row.floor) if row.floor else None
        out.append(
            {
                "readings": {
                    build: (readings or {}).get(build, {}).get(row.key, [])
                    for build in (this, base, *([go] if go else []))
                },
                "key": row.key,
                "title": row.title,
                "go": row.go,
                "issue_87c6494": row.issue_base,
                "goal": row.goal_text if row.reference else f"{row.goal_text} ({row.goal:g})",
                "target_ratio": None if target is None else round(target, 3),
                "this": mine,
                "baseline": theirs,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "met": row.met(mine, theirs),
                "out_of_reach": row.out_of_reach(floor, theirs),
                "reference": row.reference,
                "go_now": golang,
                "vs_go": round(mine / golang, 3) if mine is not None and golang else None,
            }
        )
    return out


def _verdict(row: dict[str, Any]) -> str:
    if row.get("reference"):
        return ""
    if row["met"] is False and row.get("out_of_reach"):
        return "MISSED, below the floor"
    return {True: "MET", False: "MISSED", None: "not run"}[row["met"]]


def render(rows: list[dict[str, Any]], this: str, base: str, go: str | None = None) -> str:
    from .run import table

    issue16 = any(r["go"] is not None for r in rows)
    cells = []
    for r in rows:
        target = "-" if r["target_ratio"] is None else f"{r['target_ratio']:.2f}x"
        line = [r["title"]]
        if issue16:
            line += [_fmt(r["go"]), _fmt(r["issue_87c6494"])]
        line += [
            r["goal"],
            target,
            _fmt(r["baseline"]),
            _fmt(r["this"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            _verdict(r),
        ]
        if go:
            line += [_fmt(r.get("go_now")), "-" if r.get("vs_go") is None else f"{r['vs_go']:.2f}x"]
        cells.append(line)
    headers = ["row"]
    if issue16:
        headers += ["Go (issue)", "87c6494 (issue)"]
    headers += [
        "goal",
        "goal / base" if not issue16 else "goal / 87c6494",
        f"{base} now",
        f"{this} now",
        "now ratio",
        "",
    ]
    if go:
        headers += [f"{go} now", "this / Go"]
    return table(headers, cells)
