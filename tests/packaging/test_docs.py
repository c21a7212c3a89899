"""docs/metrics.md and docs/install.md stay true to the code and the manifests."""

from __future__ import annotations

import re

import pytest

from adapters.observability.metrics import PrometheusMetrics
from adapters.xenorchestra import observer
from domain.policies.lifecycle import LifecycleAction
from domain.services.registration import Outcome

from .chart import MANIFESTS, PLAIN_MANIFESTS, REPO_ROOT

METRICS_DOC = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
INSTALL_DOC = (REPO_ROOT / "docs" / "install.md").read_text(encoding="utf-8")


def exported() -> dict[str, tuple[str, set[str]]]:
    """Every series family the CCM exports: name -> (type, label names)."""
    metrics = PrometheusMetrics(process_metrics=False)
    metrics.queue_added(queue="q")
    metrics.queue_retried(queue="q")
    metrics.queue_depth(queue="q", depth=1)
    metrics.queue_work_duration(queue="q", seconds=0.1)
    metrics.queue_waited(queue="q", seconds=0.1)
    metrics.queue_in_progress(queue="q", probe=lambda: (0.0, 0.0))
    metrics.controllers_running(names=["c"], running=True)
    metrics.observe_kube_request(host="h", method="GET", code="200", seconds=0.1, waited=0.0)
    metrics.node_synced(controller="c", result="r")
    metrics.taint_removal_delay(seconds=1.0)
    metrics.initial_sync_delay(seconds=1.0)
    metrics.leader(is_leader=True)
    metrics.observe_xo_request(endpoint="GET /vms", seconds=0.1, error="timeout")
    out = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        out[name] = (family.type, labels)
    return out


def doc_row(name: str) -> list[str]:
    match = re.search(rf"^\| `{re.escape(name)}` \|(.*)$", METRICS_DOC, flags=re.MULTILINE)
    assert match, f"docs/metrics.md has no row for {name}"
    return [cell.strip() for cell in match[1].split("|")]


@pytest.mark.parametrize("name", sorted(exported()))
def test_every_exported_metric_is_documented_with_its_type_and_labels(name: str) -> None:
    kind, labels = exported()[name]
    row = doc_row(name)
    assert row[0] == kind
    assert set(re.findall(r"`([a-z_]+)`", row[1])) == labels


@pytest.mark.parametrize(
    ("controller", "results"),
    [
        pytest.param("cloud-node", [*(o.value for o in Outcome), "error"], id="cloud-node"),
        pytest.param(
            "cloud-node-lifecycle", [a.value for a in LifecycleAction], id="cloud-node-lifecycle"
        ),
        pytest.param(
            "cloud-node-label-sync", ["updated", "unchanged", "error"], id="cloud-node-label-sync"
        ),
    ],
)
def test_every_node_sync_result_is_documented(controller: str, results: list[str]) -> None:
    for result in results:
        assert f"| `{controller}` | `{result}` |" in METRICS_DOC, result


def test_every_xo_error_class_is_documented() -> None:
    classes = [v for k, v in vars(observer).items() if k.startswith("ERROR_")]
    assert classes
    for value in classes:
        assert f"`{value}`" in METRICS_DOC, value


@pytest.mark.parametrize("path", [pytest.param(p, id=p) for p in PLAIN_MANIFESTS])
def test_the_install_guide_covers_every_plain_manifest(path: str) -> None:
    assert path in INSTALL_DOC or f"deploy/kubernetes/{path}" in INSTALL_DOC
    assert (MANIFESTS / path).is_file()


def test_the_install_guide_starts_troubleshooting_with_the_doctor_command() -> None:
    troubleshooting = INSTALL_DOC.split("## Troubleshooting", 1)[1]
    first = re.search(r"^### (.*)$", troubleshooting, flags=re.MULTILINE)
    assert first and first[1] == "Start with `xenorchestra-cloud-controller-manager doctor`"
    assert "--cloud-provider=external" in INSTALL_DOC


OPERATIONS_DOC = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
SECURE_PORT_HEADING = "## What the secure port exposes, and keeping `/metrics` private"


def secure_port_rows() -> dict[str, str]:
    """path -> who may ask it, from the table of docs/operations.md's secure-port section."""
    assert SECURE_PORT_HEADING in OPERATIONS_DOC
    section = OPERATIONS_DOC.split(SECURE_PORT_HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`/"):
            for path in re.findall(r"`(/[^`]*)`", cells[0]):
                rows[path] = cells[2]
    return rows


def shipped_always_allowed() -> set[str]:
    deployment = (REPO_ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text()
    flag = re.search(r"--authorization-always-allow-paths=(\S+)", deployment)
    assert flag is not None
    values = (
        REPO_ROOT / "deploy" / "helm" / "xenorchestra-cloud-controller-manager" / "values.yaml"
    ).read_text()
    chart = re.search(r"^authorizationAlwaysAllowPaths: \[(.*)\]$", values, flags=re.MULTILINE)
    assert chart is not None
    paths = set(flag.group(1).split(","))
    assert paths == {p.strip() for p in chart.group(1).split(",")}
    return paths


def test_the_operations_guide_lists_every_path_of_the_secure_port_and_who_may_ask() -> None:
    """Issue 30, item 6: what the port serves (the real server's routes), who may ask
    with the shipped manifests and chart (their always-allowed paths, /metrics
    included as in Go's), and how to take /metrics back."""
    from adapters.observability.health import HealthServer

    app = HealthServer(bind_address="127.0.0.1", port=0)._app()
    served = {resource.canonical for resource in app.router.resources()}
    rows = secure_port_rows()
    assert served <= set(rows), served - set(rows)
    anyone = {path for path, who in rows.items() if who.strip("*").startswith("anyone")}
    assert anyone == shipped_always_allowed()
    section = OPERATIONS_DOC.split(SECURE_PORT_HEADING, 1)[1]
    assert "--authorization-always-allow-paths=/healthz,/livez,/readyz\n" in section.replace(
        "`", "\n"
    )
    assert 'nonResourceURLs: ["/metrics"]' in section
