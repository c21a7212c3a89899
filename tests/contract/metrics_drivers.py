"""One reader per subject of the Metrics contract: what a scrape (or a test) sees.

The port only writes; each implementation keeps what it was told its own way
(Prometheus series in a registry, plain counters in memory). A reader answers
the same questions of both, in the port's words, so one test body holds for
both: how many adds a queue counted, whether a declared sync result already
reads 0, whether this replica leads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from adapters.memory import InMemoryMetrics
from adapters.observability import PrometheusMetrics
from domain.ports import Metrics


class MetricsReader(Protocol):
    """A Metrics subject and what it shows of each series."""

    metrics: Metrics

    def added(self, queue: str) -> int: ...

    def retried(self, queue: str) -> int: ...

    def depth(self, queue: str) -> int | None:
        """The queue's last reported depth; None before it reported one."""
        ...

    def work(self, queue: str) -> tuple[int, float]:
        """How many work durations the queue observed, and their sum in seconds."""
        ...

    def synced(self, controller: str, result: str) -> int | None:
        """Syncs of ``controller`` with ``result``; None when the series does not exist."""
        ...

    def taint_removal(self) -> tuple[int, float]:
        """How many taint removal delays were observed, and their sum in seconds."""
        ...

    def initial_sync(self) -> tuple[int, float]:
        """How many initial sync delays were observed, and their sum in seconds."""
        ...

    def leading(self) -> bool: ...

    def waiting(self) -> tuple[int, datetime | None]:
        """Nodes waiting for initialization, and the oldest one's creation time."""
        ...

    def without_provider_id(self) -> int: ...

    def deletions(self, outcome: str) -> int: ...

    def breaker(self) -> tuple[bool, int, int]:
        """(tripped, deletions in the window, limit) as last reported."""
        ...


class MemoryMetricsReader:
    name = "memory"

    def __init__(self) -> None:
        self.kept = InMemoryMetrics()
        self.metrics: Metrics = self.kept

    def added(self, queue: str) -> int:
        return self.kept.counters[("queue_added", queue)]

    def retried(self, queue: str) -> int:
        return self.kept.counters[("queue_retried", queue)]

    def depth(self, queue: str) -> int | None:
        return self.kept.depths.get(queue)

    def work(self, queue: str) -> tuple[int, float]:
        seconds = [s for q, s in self.kept.durations if q == queue]
        return len(seconds), sum(seconds)

    def synced(self, controller: str, result: str) -> int | None:
        key = (controller, result)
        declared = result in self.kept.declared_node_syncs.get(controller, ())
        return self.kept.counters[key] if declared or key in self.kept.counters else None

    def taint_removal(self) -> tuple[int, float]:
        delays = self.kept.taint_removal_delays
        return len(delays), sum(delays)

    def initial_sync(self) -> tuple[int, float]:
        delays = self.kept.initial_sync_delays
        return len(delays), sum(delays)

    def leading(self) -> bool:
        return self.kept.is_leader

    def waiting(self) -> tuple[int, datetime | None]:
        return self.kept.waiting

    def without_provider_id(self) -> int:
        return self.kept.without_provider_id

    def deletions(self, outcome: str) -> int:
        return self.kept.deletions[outcome]

    def breaker(self) -> tuple[bool, int, int]:
        return self.kept.breaker


class PrometheusMetricsReader:
    """Reads the series a scrape of ``/metrics`` would show."""

    name = "prometheus"

    def __init__(self) -> None:
        self.exported = PrometheusMetrics(process_metrics=False, leader_name="contract")
        self.metrics: Metrics = self.exported

    def _sample(self, series: str, **labels: str) -> float | None:
        return self.exported.registry.get_sample_value(series, labels)

    def _count(self, series: str, **labels: str) -> int:
        return int(self._sample(series, **labels) or 0)

    def added(self, queue: str) -> int:
        return self._count("workqueue_adds_total", name=queue)

    def retried(self, queue: str) -> int:
        return self._count("workqueue_retries_total", name=queue)

    def depth(self, queue: str) -> int | None:
        value = self._sample("workqueue_depth", name=queue)
        return None if value is None else int(value)

    def work(self, queue: str) -> tuple[int, float]:
        return (
            self._count("workqueue_work_duration_seconds_count", name=queue),
            self._sample("workqueue_work_duration_seconds_sum", name=queue) or 0.0,
        )

    def synced(self, controller: str, result: str) -> int | None:
        value = self._sample(
            "xenorchestra_ccm_node_syncs_total", controller=controller, result=result
        )
        return None if value is None else int(value)

    def taint_removal(self) -> tuple[int, float]:
        return self._histogram("node_controller_cloud_provider_taint_removal_delay_seconds")

    def initial_sync(self) -> tuple[int, float]:
        return self._histogram("node_controller_initial_node_sync_delay_seconds")

    def _histogram(self, name: str) -> tuple[int, float]:
        return self._count(f"{name}_count"), self._sample(f"{name}_sum") or 0.0

    def leading(self) -> bool:
        return self._sample("leader_election_master_status", name="contract") == 1

    def waiting(self) -> tuple[int, datetime | None]:
        count = self._count("xenorchestra_ccm_nodes_waiting_initialization")
        stamp = self._sample("xenorchestra_ccm_oldest_waiting_node_creation_timestamp_seconds")
        return count, datetime.fromtimestamp(stamp, UTC) if stamp else None

    def without_provider_id(self) -> int:
        return self._count("xenorchestra_ccm_nodes_without_provider_id")

    def deletions(self, outcome: str) -> int:
        return self._count("xenorchestra_ccm_node_deletions_total", outcome=outcome)

    def breaker(self) -> tuple[bool, int, int]:
        return (
            self._sample("xenorchestra_ccm_deletion_breaker_tripped") == 1,
            self._count("xenorchestra_ccm_deletion_breaker_window_deletions"),
            self._count("xenorchestra_ccm_deletion_breaker_limit"),
        )
