"""The alert rules: promtool checks them and runs one unit-test file per alert.

Each file in tests/alerts/promtool/ is named after its alert and feeds promtool
synthetic series that fire the alert and series that must not. A test of the
tests proves each file fails once its alert is gone, so none passes vacuously.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .monitoring import (
    DEFAULT_JOB_SELECTOR,
    DEFAULT_RUNBOOK_BASE,
    PLAIN_RULE,
    PROMTOOL_TESTS,
    RENDER_SCRIPT,
    RULES_FILE,
    alert_names,
    alerts,
    doc_anchors,
    github_anchor,
    rule_groups,
    selectors,
    thresholds,
)

ALERTS = [pytest.param(name, id=name) for name in alert_names()]
DURATION = re.compile(r"^(\d+[smhdwy])+$")


def run(argv: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def unit_test_file(alert: str) -> Path:
    return PROMTOOL_TESTS / f"{alert}.yaml"


def test_promtool_accepts_the_rule_file(promtool: Path) -> None:
    done = run([promtool, "check", "rules", RULES_FILE])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


@pytest.mark.parametrize("alert", ALERTS)
def test_promtool_unit_tests_of_each_alert_pass(promtool: Path, alert: str) -> None:
    path = unit_test_file(alert)
    assert path.is_file(), f"{alert} has no unit-test file {path.name}"
    done = run([promtool, "test", "rules", path.name], cwd=PROMTOOL_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("alert", ALERTS)
def test_each_alert_file_fires_its_alert_and_also_holds_it_back(alert: str) -> None:
    spec = yaml.safe_load(unit_test_file(alert).read_text(encoding="utf-8"))
    assert spec["rule_files"] == [os.path.relpath(RULES_FILE, PROMTOOL_TESTS)]
    checks = [c for test in spec["tests"] for c in test["alert_rule_test"]]
    assert {c["alertname"] for c in checks} == {alert}, "one alert per file"
    assert any(c["exp_alerts"] for c in checks), "no series fire it"
    assert any(not c["exp_alerts"] for c in checks), "no series hold it back"


def test_no_unit_test_file_is_left_without_its_alert() -> None:
    assert sorted(p.stem for p in PROMTOOL_TESTS.glob("*.yaml")) == sorted(alert_names())


@pytest.mark.parametrize("alert", ALERTS)
def test_each_unit_test_file_fails_without_its_alert(
    promtool: Path, alert: str, tmp_path: Path
) -> None:
    groups = rule_groups()
    for group in groups:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != alert]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    spec = yaml.safe_load(unit_test_file(alert).read_text(encoding="utf-8"))
    spec["rule_files"] = [str(rules)]
    test = tmp_path / "test.yaml"
    test.write_text(yaml.safe_dump(spec), encoding="utf-8")

    done = run([promtool, "test", "rules", test])

    assert done.returncode != 0, f"{alert}'s tests pass without the alert:\n{done.stdout}"


@pytest.mark.parametrize("alert", ALERTS)
def test_each_alert_links_to_its_runbook_section(alert: str) -> None:
    rule = next(a for a in alerts() if a["alert"] == alert)
    anchor = github_anchor(alert)
    assert rule["annotations"]["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE}#{anchor}"
    assert anchor in doc_anchors(), f"docs/operations.md has no section '{alert}'"


@pytest.mark.parametrize("alert", ALERTS)
def test_each_alert_says_how_bad_and_what_happened(alert: str) -> None:
    rule: dict[str, Any] = next(a for a in alerts() if a["alert"] == alert)
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("alert", ALERTS)
def test_every_selector_is_scoped_to_this_ccm_by_the_one_job_selector(alert: str) -> None:
    """workqueue_* and leader_election_master_status are exported by other controller
    managers too; the chart swaps this one selector for its own."""
    rule = next(a for a in alerts() if a["alert"] == alert)
    job = DEFAULT_JOB_SELECTOR.split("=~")[1].strip('"')
    for selector in selectors(rule["expr"]):
        assert ("job", "=~", job) in selector.matchers, str(selector)


def test_thresholds_are_marked_once_each_with_a_valid_default() -> None:
    found = thresholds()
    assert len(found) >= len(alerts())
    for name, value in found.items():
        if name.endswith("For"):
            assert DURATION.match(value), (name, value)
        else:
            float(value)


def test_the_plain_prometheusrule_is_the_rule_file_wrapped() -> None:
    done = run([sys.executable, RENDER_SCRIPT, "--check"])
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load(PLAIN_RULE.read_text(encoding="utf-8"))
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == rule_groups()
