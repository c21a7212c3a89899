"""The checker test_scrape relies on: it must flag what a live /metrics lacks."""

from __future__ import annotations

import pytest

from .monitoring import exposed, grafana_to_promql, missing, selectors

METRICS = """\
# TYPE workqueue_retries counter
workqueue_retries_total{name="cloud-node"} 0
# TYPE xenorchestra_request_errors counter
xenorchestra_request_errors_total{endpoint="GET /vms/{id}",error="not_found"} 2
# TYPE xenorchestra_request_duration_seconds histogram
xenorchestra_request_duration_seconds_bucket{endpoint="GET /vms",le="+Inf"} 3
xenorchestra_request_duration_seconds_count{endpoint="GET /vms"} 3
xenorchestra_request_duration_seconds_sum{endpoint="GET /vms"} 0.1
"""


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        pytest.param('sum(rate(workqueue_retries_total{job="x"}[5m]))', None, id="found"),
        pytest.param("rate(workqueue_retries[5m])", "is not exported", id="counter-without-total"),
        pytest.param(
            'workqueue_retries_total{name="cloud-node-lifecycle"}', "matches", id="no-such-value"
        ),
        pytest.param('workqueue_retries_total{name=~"cloud-.*"}', None, id="regex-value"),
        pytest.param("sum by (queue) (workqueue_retries_total)", "no label 'queue'", id="by"),
        pytest.param(
            "sum by (job, instance) (workqueue_retries_total)", None, id="target-labels-skipped"
        ),
        pytest.param(
            'xenorchestra_request_errors_total{error!="not_found"}', None, id="negative-matcher"
        ),
        pytest.param(
            'xenorchestra_request_duration_seconds_count{error!="timeout"}',
            "no label 'error'",
            id="negative-matcher-label",
        ),
        pytest.param(
            "histogram_quantile(0.9, sum by (le, endpoint) "
            "(rate(xenorchestra_request_duration_seconds_bucket[5m])))",
            None,
            id="histogram",
        ),
        pytest.param(
            "a and on (name) workqueue_retries_total", "a is not exported", id="and-left-side"
        ),
        pytest.param(
            "workqueue_retries_total > on (endpoint) xenorchestra_request_errors_total",
            "no label 'endpoint'",
            id="on-both-sides",
        ),
    ],
)
def test_missing_series_and_labels_are_flagged(expr: str, why: str | None) -> None:
    samples = exposed(METRICS)
    reasons = [r for s in selectors(expr) if (r := missing(s, samples)) is not None]
    if why is None:
        assert reasons == []
    else:
        assert any(why in r for r in reasons), reasons


def test_grafana_variables_become_promql() -> None:
    expr = grafana_to_promql('rate(x{job=~"$job",instance=~"${instance}"}[$__rate_interval])')
    assert expr == 'rate(x{job=~".+",instance=~".+"}[5m])'
    assert selectors(expr)[0].name == "x"
