"""The Grafana dashboard: well-formed, every query valid PromQL, every topic covered.

Whether the series its queries read exist is test_scrape's job (a live CCM).
"""

from __future__ import annotations

from collections import Counter

import pytest

from .monitoring import OPERATIONS_DOC, dashboard, panel_queries, panels, selectors

#: What an operator must see at a glance (issue 17), and a series that shows each.
TOPICS = {
    "node initialization rate": "node_controller_cloud_provider_taint_removal_delay_seconds_count",
    "node initialization delay": (
        "node_controller_cloud_provider_taint_removal_delay_seconds_bucket"
    ),
    "nodes waiting": "xenorchestra_ccm_nodes_waiting_initialization",
    "queue depth": "workqueue_depth",
    "queue retries": "workqueue_retries_total",
    "XO request rate": "xenorchestra_request_duration_seconds_count",
    "XO latency": "xenorchestra_request_duration_seconds_bucket",
    "XO errors": "xenorchestra_request_errors_total",
    "event stream state": "xenorchestra_event_stream_state",
    "leader": "leader_election_master_status",
    "deletions": "xenorchestra_ccm_node_deletions_total",
    "breaker": "xenorchestra_ccm_deletion_breaker_tripped",
}


def test_the_dashboard_is_importable_as_is() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert "id" not in board, "an id ties the dashboard to one Grafana: leave it out"
    names = [v["name"] for v in board["templating"]["list"]]
    assert names[0] == "datasource", "the data source is chosen, not hard-coded"
    ids = Counter(p["id"] for p in board["panels"])
    assert all(n == 1 for n in ids.values()), f"duplicate panel ids: {ids}"
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]


@pytest.mark.parametrize(("title", "expr"), panel_queries())
def test_every_query_parses_and_is_scoped_by_the_job_and_replica_variables(
    title: str, expr: str
) -> None:
    found = selectors(expr)
    assert found, f"{title}: no series read"
    for selector in found:
        labels = {label for label, _, _ in selector.matchers}
        assert {"job", "instance"} <= labels, f"{title}: {selector}"


@pytest.mark.parametrize(("topic", "metric"), TOPICS.items())
def test_each_topic_has_a_panel(topic: str, metric: str) -> None:
    assert any(s.name == metric for _, expr in panel_queries() for s in selectors(expr)), topic


@pytest.mark.parametrize("title", sorted({p["title"] for p in panels()}))
def test_each_panel_is_explained_in_the_operations_guide(title: str) -> None:
    assert f"| {title} |" in OPERATIONS_DOC.read_text(encoding="utf-8"), title
