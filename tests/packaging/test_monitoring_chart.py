"""The chart's alerts (PrometheusRule) and dashboard (ConfigMap), opt-in.

Both come from deploy/monitoring/ through files/ links, so the chart, promtool and
the plain manifest read one file each. Thresholds, the job selector and the
runbook base are values; with the defaults the chart renders the rule file as is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from adapters.kubernetes import KubeClient
from tests.alerts.conftest import PROMTOOL
from tests.alerts.monitoring import (
    DASHBOARD_FILE,
    DEFAULT_JOB_SELECTOR,
    DEFAULT_RUNBOOK_BASE,
    PLAIN_RULE,
    RULES_FILE,
    THRESHOLD_MARKER,
    dashboard,
    rule_groups,
    selectors,
    thresholds,
)

from .chart import CHART, NAMESPACE, Obj, RenderError, helm_template, load_documents, of_kind, only
from .test_dry_run import dry_run_all

ON = ("prometheusRule.enabled=true", "dashboard.enabled=true")
#: A value for every threshold, none of them its default.
CUSTOM = {
    name: ("7m" if name.endswith("For") else str(float(default) + 0.25))
    for name, default in thresholds().items()
}


def rendered(helm: Path, *extra: str) -> list[Obj]:
    return helm_template(helm, set_values=[*ON, *extra])


def rule(docs: list[Obj]) -> Obj:
    return only(docs, "PrometheusRule")


def raw_rule(helm: Path, *extra: str) -> str:
    """The PrometheusRule as helm prints it (comments, hence threshold markers, kept)."""
    argv = [str(helm), "template", "xenorchestra-cloud-controller-manager", str(CHART)]
    argv += ["--namespace", NAMESPACE, "--show-only", "templates/prometheusrule.yaml"]
    for item in (*ON, *extra):
        argv += ["--set", item]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_nothing_is_rendered_unless_asked(helm: Path) -> None:
    docs = helm_template(helm)
    assert not of_kind(docs, "PrometheusRule")
    assert not [
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]


def test_the_chart_links_to_the_monitoring_files_rather_than_copying_them() -> None:
    for name, target in (
        ("xenorchestra-ccm.rules.yaml", RULES_FILE),
        ("dashboard.json", DASHBOARD_FILE),
    ):
        link = CHART / "files" / name
        assert link.is_symlink(), f"{link} must link to deploy/monitoring/, not copy it"
        assert link.resolve() == target.resolve()


def test_with_the_defaults_the_rules_are_the_rule_file(helm: Path) -> None:
    obj = rule(rendered(helm))
    assert obj["metadata"]["namespace"] == NAMESPACE
    assert obj["spec"]["groups"] == rule_groups()
    plain = yaml.safe_load(PLAIN_RULE.read_text(encoding="utf-8"))
    assert obj["spec"] == plain["spec"]


def test_the_values_name_every_threshold_with_the_rule_files_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    block = values["prometheusRule"]
    assert {k: str(v) for k, v in block["thresholds"].items()} == thresholds()
    assert block["runbookBaseURL"] == DEFAULT_RUNBOOK_BASE
    assert block["enabled"] is False and values["dashboard"]["enabled"] is False


def test_thresholds_selector_runbooks_and_labels_are_values(helm: Path, tmp_path: Path) -> None:
    base = "https://ops.example.com/xoccm/operations.html"
    text = raw_rule(
        helm,
        *(f"prometheusRule.thresholds.{k}={v}" for k, v in CUSTOM.items()),
        'prometheusRule.jobSelector=job="xoccm"',
        f"prometheusRule.runbookBaseURL={base}",
        "prometheusRule.labels.release=prometheus",
        "prometheusRule.namespace=monitoring",
    )
    assert {name: value for value, name in THRESHOLD_MARKER.findall(text)} == CUSTOM
    [obj] = load_documents(text)
    groups = obj["spec"]["groups"]
    for r in groups[0]["rules"]:
        for selector in selectors(r["expr"]):
            assert ("job", "=", "xoccm") in selector.matchers, (r["alert"], str(selector))
        assert r["annotations"]["runbook_url"].startswith(base + "#")
    assert obj["metadata"]["labels"]["release"] == "prometheus"
    assert obj["metadata"]["namespace"] == "monitoring"

    # promtool accepts what the chart made of the values
    path = tmp_path / "chart.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    done = subprocess.run(
        [str(PROMTOOL.path()), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_threshold_the_rules_do_not_have_is_refused(helm: Path) -> None:
    with pytest.raises(RenderError, match=r"prometheusRule.thresholds.xoNoAnswer: no rule"):
        rendered(helm, "prometheusRule.thresholds.xoNoAnswer=60")


def test_the_default_selector_matches_the_jobs_of_the_charts_monitors(helm: Path) -> None:
    docs = rendered(
        helm, "fullnameOverride=xoccm", "serviceMonitor.enabled=true", "podMonitor.enabled=true"
    )
    [expr] = {
        m[2]
        for r in rule(docs)["spec"]["groups"][0]["rules"]
        for s in selectors(r["expr"])
        for m in s.matchers
        if m[0] == "job"
    }
    # The operator names a ServiceMonitor's job after the Service, a PodMonitor's
    # after <namespace>/<name>.
    service = only(docs, "Service")["metadata"]["name"]
    pod_monitor = only(docs, "PodMonitor")["metadata"]
    for job in (service, f"{pod_monitor['namespace']}/{pod_monitor['name']}"):
        assert re.fullmatch(expr, job), (expr, job)
    assert DEFAULT_JOB_SELECTOR not in yaml.safe_dump(rule(docs))


def test_the_dashboard_configmap_holds_the_dashboard_for_grafanas_sidecar(helm: Path) -> None:
    docs = rendered(helm)
    [config_map] = [
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(key, text)] = config_map["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == dashboard()

    moved = rendered(
        helm,
        "dashboard.namespace=grafana",
        "dashboard.annotations.grafana_folder=Kubernetes",
        "dashboard.labels.team=platform",
    )
    [config_map] = [
        d for d in of_kind(moved, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Kubernetes"}
    assert config_map["metadata"]["labels"]["team"] == "platform"


def test_the_chart_passes_strict_linting_with_both_on(helm: Path) -> None:
    argv = [str(helm), "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for item in ON:
        argv += ["--set", item]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
async def test_the_api_server_accepts_the_rules_and_the_dashboard(
    kube: KubeClient, helm: Path
) -> None:
    docs = rendered(helm, "serviceMonitor.enabled=true")
    answers = await dry_run_all(kube, docs)
    assert {"PrometheusRule", "ConfigMap", "ServiceMonitor"} <= {a["kind"] for a in answers}
    await dry_run_all(kube, load_documents(PLAIN_RULE.read_text(encoding="utf-8")))


def test_symbolic_links_resolve_inside_the_repository() -> None:
    for link in (CHART / "files").iterdir():
        target = os.readlink(link)
        assert not os.path.isabs(target), f"{link}: an absolute link breaks in every other clone"
