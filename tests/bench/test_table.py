"""The side-by-side table's arithmetic and the baseline's command line (no process run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ccm_process import OPEN_PATHS
from tools.bench.builds import THIS_TREE, BenchCCM, Build
from tools.bench.table import ROWS, compare, medians, render


def test_each_go_goal_is_translated_into_a_ratio_of_87c6494() -> None:
    by_key = {row.key: row for row in ROWS}
    assert by_key["reg1000"].target_ratio == pytest.approx(105 / 149.2)  # the issue's 0.70x
    assert by_key["reg200_10w"].target_ratio == pytest.approx(0.8 * 5.6 / 6.2)
    assert by_key["rest1000_cpu"].target_ratio == pytest.approx(0.10 / 0.26)
    assert by_key["rss5000"].target_ratio == pytest.approx(1.0)


def test_a_row_is_met_when_the_measured_ratio_is_within_the_target() -> None:
    measured = {
        "this-tree": {"reg1000": 100.0, "rest1000_cpu": 0.2},
        "87c6494": {"reg1000": 150.0, "rest1000_cpu": 0.25},
    }
    rows = {r["key"]: r for r in compare(measured, "this-tree", "87c6494")}
    assert rows["reg1000"]["ratio"] == pytest.approx(0.667, abs=1e-3)
    assert rows["reg1000"]["met"] is True
    assert rows["rest1000_cpu"]["met"] is False  # 0.8x, the goal is 0.38x
    assert rows["reg5000_10w"]["met"] is None  # not run (no --full)
    text = render(list(rows.values()), "this-tree", "87c6494")
    assert "MET" in text and "MISSED" in text and "not run" in text


def test_repeated_runs_compare_their_medians_and_keep_every_reading() -> None:
    readings = {
        "this-tree": {"reg200_10w": [1.30, 1.05, 1.07]},
        "87c6494": {"reg200_10w": [1.86, 1.47, 1.69]},
    }
    measured = medians(readings)
    assert measured == {"this-tree": {"reg200_10w": 1.07}, "87c6494": {"reg200_10w": 1.69}}
    row = next(
        r for r in compare(measured, "this-tree", "87c6494", readings) if r["key"] == "reg200_10w"
    )
    assert row["ratio"] == pytest.approx(1.07 / 1.69, abs=1e-3)
    assert row["met"] is True  # 0.63x; the slowest reading alone (1.30 / 1.47) would miss
    assert row["readings"]["this-tree"] == [1.30, 1.05, 1.07]


def test_a_revision_from_before_secure_serving_gets_no_authorization_flag(tmp_path: Path) -> None:
    old = Build(name="old", src=tmp_path / "src", secure=False)
    ccm = BenchCCM(build=old, kubeconfig="k", cloud_config="c", flags=["--v=2"])
    assert OPEN_PATHS not in ccm.argv
    assert ccm.url.startswith("http://")
    assert ccm.env["PYTHONPATH"].startswith(str(tmp_path / "src"))
    mine = BenchCCM(build=THIS_TREE, kubeconfig="k", cloud_config="c", flags=["--v=2"])
    assert OPEN_PATHS in mine.argv and mine.url.startswith("https://")
    profiled = BenchCCM(
        build=THIS_TREE, kubeconfig="k", cloud_config="c", profile=tmp_path / "p.prof"
    )
    assert profiled.argv[1:4] == ["-m", "tools.bench.profiled", str(tmp_path / "p.prof")]


def test_issue_29_goals_are_ratios_to_the_baseline_or_absolute() -> None:
    from tools.bench.table import ISSUE29

    rows = {row.key: row for row in ISSUE29}
    assert rows["cpu200_10w"].met(2.0, 4.1) is True  # half the baseline's CPU
    assert rows["cpu200_10w"].met(2.2, 4.1) is False
    assert rows["reg200"].met(18.9, 18.6) is True  # no ground lost beyond 5 %
    assert rows["first_over_p50"].met(1.9, None) is True  # absolute: no baseline needed
    assert rows["first_over_p50"].met(2.1, 1.0) is False
    assert rows["rss200"].target_ratio is None


def test_the_control_plane_floor_is_shown_beside_the_time_it_bounds_never_judged() -> None:
    from tools.bench.table import ISSUE29

    keys = [row.key for row in ISSUE29]
    assert keys.index("floor200_10w") == keys.index("reg200_10w") + 1
    assert keys.index("floor200_auto") == keys.index("reg200_auto") + 1
    measured = {
        "this-tree": {"reg200_10w": 1.11, "floor200_10w": 0.87},
        "4a6c53b": {"reg200_10w": 1.24, "floor200_10w": 0.96},
    }
    rows = {r["key"]: r for r in compare(measured, "this-tree", "4a6c53b", rows=ISSUE29)}
    assert rows["reg200_10w"]["met"] is False
    assert rows["floor200_10w"]["met"] is None and rows["floor200_10w"]["this"] == 0.87
    line = next(
        line
        for line in render(list(rows.values()), "this-tree", "4a6c53b").splitlines()
        if "control plane alone" in line
    )
    assert "0.87" in line and "0.96" in line and "reference" in line
    assert "MET" not in line and "MISSED" not in line and "not run" not in line


def test_a_time_goal_below_the_control_plane_alone_reads_as_out_of_reach() -> None:
    from tools.bench.table import ISSUE29

    def verdict(mine: float, floor: float) -> tuple[dict[str, object], str]:
        measured = {
            "this-tree": {"reg200_auto": mine, "floor200_auto": floor},
            "4a6c53b": {"reg200_auto": 1.10, "floor200_auto": 0.85},
        }
        rows = compare(measured, "this-tree", "4a6c53b", rows=ISSUE29)
        row = next(r for r in rows if r["key"] == "reg200_auto")
        line = next(
            line
            for line in render(rows, "this-tree", "4a6c53b").splitlines()
            if "workers sized" in line and "(s)" in line
        )
        return row, line

    # the goal is 0.6 x 1.10 = 0.66 s; the control plane alone took 0.86 s of it
    row, line = verdict(0.97, 0.86)
    assert row["met"] is False and row["out_of_reach"] is True
    assert "MISSED, below the floor" in line
    # a floor under the goal: the miss is the CCM's own
    row, line = verdict(0.97, 0.50)
    assert row["met"] is False and row["out_of_reach"] is False
    assert line.rstrip().endswith("MISSED")
    # met is met, whatever the floor
    row, line = verdict(0.60, 0.86)
    assert row["met"] is True and "MET" in line and "floor" not in line


def test_the_go_ccm_runs_as_built_with_its_manifests_flags_and_answers_healthz(
    tmp_path: Path,
) -> None:
    from tools.bench.builds import go_ccm

    binary = tmp_path / "xenorchestra-cloud-controller-manager"
    binary.write_text("#!/bin/sh\n")
    with pytest.raises(SystemExit, match="not an executable file"):
        go_ccm(binary)
    binary.chmod(0o755)
    go = go_ccm(binary)
    assert go.with_runtime() is go  # no interpreter to install
    ccm = BenchCCM(build=go, kubeconfig="k", cloud_config="c", flags=["--v=2"])
    assert ccm.argv[:3] == [
        str(binary),
        "--cloud-provider=xenorchestra",
        "--controllers=cloud-node,cloud-node-lifecycle,cloud-node-label-sync",
    ]
    assert "--cloud-config=c" in ccm.argv and OPEN_PATHS in ccm.argv
    assert go.env() == {}  # a binary: no PYTHONPATH of a tree
    assert ccm.ready_path == "/healthz"
    assert BenchCCM(build=THIS_TREE, kubeconfig="k", cloud_config="c").ready_path == "/readyz"


def test_the_go_ccm_gets_a_column_of_its_own_and_no_import_run(tmp_path: Path) -> None:
    from tools.bench.table import ISSUE29, plan

    readings = {
        "this-tree": {"reg200_10w": [1.16], "rss_imports": [60.1]},
        "4a6c53b": {"reg200_10w": [1.15], "rss_imports": [66.2]},
        "go-ccm": {"reg200_10w": [1.50]},
    }
    rows = {
        r["key"]: r
        for r in compare(medians(readings), "this-tree", "4a6c53b", readings, ISSUE29, go="go-ccm")
    }
    assert rows["reg200_10w"]["go_now"] == 1.50
    assert rows["reg200_10w"]["vs_go"] == pytest.approx(1.16 / 1.50, abs=1e-3)
    assert rows["reg200_10w"]["met"] is False  # the goal stays the baseline's
    assert rows["rss_imports"]["vs_go"] is None
    text = render(list(rows.values()), "this-tree", "4a6c53b", "go-ccm")
    assert "go-ccm now" in text and "0.77x" in text
    binary = tmp_path / "ccm"
    binary.write_text("")
    binary.chmod(0o755)
    from tools.bench.builds import go_ccm

    runs = plan(None, go_ccm(binary), full=False, window=1.0)  # type: ignore[arg-type]
    assert runs and not any("rss_imports" in readers for _, _, readers in runs)
    assert any(
        "rss_imports" in readers
        for _, _, readers in plan(None, THIS_TREE, full=False, window=1.0)  # type: ignore[arg-type]
    )
