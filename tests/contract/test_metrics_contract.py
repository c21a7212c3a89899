"""The Metrics port's contract: InMemoryMetrics (tests, embedders) and PrometheusMetrics.

The controllers measure through the port and never know which one listens; the
unit tests read the in-memory one, operators read Prometheus. Both must keep
the same account: counters add up per queue and per (controller, result), the
gauges hold the last value reported, a declared sync result exists at 0 before
its first sync (alerts rely on it), and one queue or controller never shows in
another's series.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.contract.metrics_drivers import (
    MemoryMetricsReader,
    MetricsReader,
    PrometheusMetricsReader,
)

CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "prometheus"])
def reader(request: pytest.FixtureRequest) -> MetricsReader:
    if request.param == "memory":
        return MemoryMetricsReader()
    return PrometheusMetricsReader()


def test_a_new_subject_shows_nothing_done(reader: MetricsReader) -> None:
    assert reader.added("cloud-node") == 0
    assert reader.retried("cloud-node") == 0
    assert reader.work("cloud-node") == (0, 0.0)
    assert reader.taint_removal() == (0, 0.0)
    assert reader.leading() is False
    assert reader.waiting() == (0, None)
    assert reader.without_provider_id() == 0
    assert reader.deletions("deleted") == 0
    assert reader.breaker() == (False, 0, 0)


def test_queue_counters_add_up_per_queue(reader: MetricsReader) -> None:
    for _ in range(3):
        reader.metrics.queue_added(queue="cloud-node")
    reader.metrics.queue_retried(queue="cloud-node")
    reader.metrics.queue_added(queue="lifecycle")

    assert reader.added("cloud-node") == 3
    assert reader.retried("cloud-node") == 1
    assert reader.added("lifecycle") == 1
    assert reader.retried("lifecycle") == 0


def test_queue_depth_holds_the_last_value_reported(reader: MetricsReader) -> None:
    reader.metrics.queue_depth(queue="cloud-node", depth=7)
    reader.metrics.queue_depth(queue="cloud-node", depth=2)
    reader.metrics.queue_depth(queue="lifecycle", depth=0)

    assert reader.depth("cloud-node") == 2
    assert reader.depth("lifecycle") == 0
    assert reader.depth("label-sync") is None


def test_work_durations_are_counted_and_summed_per_queue(reader: MetricsReader) -> None:
    reader.metrics.queue_work_duration(queue="cloud-node", seconds=0.25)
    reader.metrics.queue_work_duration(queue="cloud-node", seconds=0.5)
    reader.metrics.queue_work_duration(queue="lifecycle", seconds=2.0)

    count, total = reader.work("cloud-node")
    assert count == 2
    assert total == pytest.approx(0.75)
    assert reader.work("lifecycle") == (1, pytest.approx(2.0))


def test_node_syncs_count_per_controller_and_result(reader: MetricsReader) -> None:
    reader.metrics.node_synced(controller="cloud-node", result="initialized")
    reader.metrics.node_synced(controller="cloud-node", result="initialized")
    reader.metrics.node_synced(controller="cloud-node", result="error")
    reader.metrics.node_synced(controller="label-sync", result="initialized")

    assert reader.synced("cloud-node", "initialized") == 2
    assert reader.synced("cloud-node", "error") == 1
    assert reader.synced("label-sync", "initialized") == 1
    assert reader.synced("label-sync", "error") is None  # never declared, never seen


def test_a_declared_sync_result_exists_at_zero_before_its_first_sync(
    reader: MetricsReader,
) -> None:
    reader.metrics.declare_node_syncs(controller="cloud-node", results=("initialized", "error"))

    assert reader.synced("cloud-node", "initialized") == 0
    assert reader.synced("cloud-node", "error") == 0
    assert reader.synced("cloud-node", "skipped") is None
    assert reader.synced("lifecycle", "initialized") is None

    reader.metrics.node_synced(controller="cloud-node", result="error")
    assert reader.synced("cloud-node", "error") == 1


def test_taint_removal_delays_are_counted_and_summed(reader: MetricsReader) -> None:
    reader.metrics.taint_removal_delay(seconds=3.0)
    reader.metrics.taint_removal_delay(seconds=42.0)

    count, total = reader.taint_removal()
    assert count == 2
    assert total == pytest.approx(45.0)
    assert reader.initial_sync() == (0, 0.0)  # a histogram of its own


def test_initial_sync_delays_are_counted_and_summed(reader: MetricsReader) -> None:
    reader.metrics.initial_sync_delay(seconds=4.0)
    count, total = reader.initial_sync()
    assert (count, total) == (1, pytest.approx(4.0))
    assert reader.taint_removal() == (0, 0.0)


def test_leadership_follows_the_last_report(reader: MetricsReader) -> None:
    reader.metrics.leader(is_leader=True)
    assert reader.leading() is True
    reader.metrics.leader(is_leader=False)
    assert reader.leading() is False


def test_waiting_nodes_and_the_oldest_creation_time(reader: MetricsReader) -> None:
    reader.metrics.nodes_waiting_initialization(count=3, oldest_created_at=CREATED)
    assert reader.waiting() == (3, CREATED)

    reader.metrics.nodes_waiting_initialization(count=0, oldest_created_at=None)
    assert reader.waiting() == (0, None)


def test_nodes_without_provider_id_hold_the_last_count(reader: MetricsReader) -> None:
    reader.metrics.nodes_without_provider_id(count=4)
    reader.metrics.nodes_without_provider_id(count=1)
    assert reader.without_provider_id() == 1


def test_deletions_count_per_outcome(reader: MetricsReader) -> None:
    reader.metrics.node_deletion(outcome="deleted")
    reader.metrics.node_deletion(outcome="deleted")
    reader.metrics.node_deletion(outcome="refused")

    assert reader.deletions("deleted") == 2
    assert reader.deletions("refused") == 1
    assert reader.deletions("dry-run") == 0


def test_the_breaker_shows_its_last_state(reader: MetricsReader) -> None:
    reader.metrics.deletion_breaker(tripped=False, deletions_in_window=2, limit=5)
    assert reader.breaker() == (False, 2, 5)

    reader.metrics.deletion_breaker(tripped=True, deletions_in_window=5, limit=5)
    assert reader.breaker() == (True, 5, 5)
