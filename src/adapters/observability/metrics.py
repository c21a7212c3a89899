"""The Metrics port exported to Prometheus.

Metric names follow what Kubernetes controller managers already expose, so
the dashboards and alerts written for the reference CCM keep working:
client-go's ``workqueue_*`` family (label ``name``), cloud-provider's node
controller's ``node_controller_cloud_provider_taint_removal_delay_seconds`` and
``node_controller_initial_node_sync_delay_seconds`` (its buckets too) and
component-base's ``leader_election_master_status``, checked against what the Go
CCM v1.1.0 serves (``tests/contract/go_ccm_metrics.txt``). CCM- and XO-specific
series carry a ``xenorchestra_`` prefix. No ``*_created`` series: Go's client
library has none, and they would double the series of every counter and histogram.

Each instance owns its ``CollectorRegistry`` (never the process-global
one), so tests and embedders can create as many as they like without
"Duplicated timeseries" errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

#: client-go's workqueue duration buckets: 10 ns to 10 s, decades.
_WORK_BUCKETS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: client-go's rest_client latency buckets.
_REST_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
#: component-base's name for the manager in ``running_managed_controllers``.
_MANAGER = "cloud-controller-manager"
#: Node creation -> taint removed / initial sync done: cloud-provider's node
#: controller's buckets (``ExponentialBuckets(1, 4, 6)``), so its dashboards read alike.
_NODE_SYNC_BUCKETS = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
#: XO REST calls: tens of milliseconds usually, up to the client timeout.
_XO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: ``xenorchestra_ccm_node_deletions_total`` outcomes (the lifecycle service's).
DELETION_OUTCOMES = ("deleted", "refused", "dry-run", "failed", "unverified")
#: ``xenorchestra_event_stream_state`` states: ``stopped`` is a replica that does not
#: lead (only the leader streams), ``down`` a stream lost and being reopened.
STREAM_STATES = ("connected", "polling", "down", "stopped")
#: Kubernetes Event types and what became of each event.
EVENT_TYPES = ("Normal", "Warning")
EVENT_RESULTS = ("recorded", "dropped", "failed")
#: XO error classes that still mean XO answered (a 404 is an answer).
_ANSWERED = (None, "not_found")


class PrometheusMetrics:
    """Implements ``domain.ports.Metrics``; also the XO adapter's request metrics.

    ``leader_name`` labels the leader gauge (the Lease name, as
    component-base does). ``process_metrics`` adds the standard
    ``process_*``/``python_info`` collectors to this registry.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        leader_name: str = "cloud-controller-manager",
        process_metrics: bool = True,
    ) -> None:
        # The library's switch is process-wide (and untyped); no series here wants them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self._leader_name = leader_name
        self._queues: set[str] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.queue_depth_gauge = Gauge(
            "workqueue_depth", "Current depth of workqueue", ["name"], registry=r
        )
        self.queue_adds = Counter(
            "workqueue_adds", "Total number of adds handled by workqueue", ["name"], registry=r
        )
        self.queue_retries = Counter(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            ["name"],
            registry=r,
        )
        self.queue_work_duration_seconds = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            ["name"],
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.queue_duration_seconds = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            ["name"],
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.queue_unfinished_seconds = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has done that is in progress and hasn't been observed "
            "by work_duration. Large values indicate stuck threads.",
            ["name"],
            registry=r,
        )
        self.queue_longest_seconds = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            ["name"],
            registry=r,
        )
        self.controllers_gauge = Gauge(
            "running_managed_controllers",
            "Indicates where instances of a controller are currently running",
            ["manager", "name"],
            registry=r,
        )
        self.rest_requests = Counter(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ["code", "host", "method"],
            registry=r,
        )
        self.rest_request_seconds = Histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            ["host", "verb"],
            buckets=_REST_BUCKETS,
            registry=r,
        )
        self.rest_limiter_seconds = Histogram(
            "rest_client_rate_limiter_duration_seconds",
            "Client side rate limiter latency in seconds. Broken down by verb, and host.",
            ["host", "verb"],
            buckets=_REST_BUCKETS,
            registry=r,
        )
        self.node_syncs = Counter(
            "xenorchestra_ccm_node_syncs",
            "Node syncs by controller and result",
            ["controller", "result"],
            registry=r,
        )
        self.taint_removal_delay_seconds = Histogram(
            "node_controller_cloud_provider_taint_removal_delay_seconds",
            "Number of seconds after node creation when NodeController removed the "
            "cloud-provider taint of a single node.",
            buckets=_NODE_SYNC_BUCKETS,
            registry=r,
        )
        self.initial_sync_delay_seconds = Histogram(
            "node_controller_initial_node_sync_delay_seconds",
            "Number of seconds after node creation when NodeController finished the "
            "initial synchronization of a single node.",
            buckets=_NODE_SYNC_BUCKETS,
            registry=r,
        )
        self.leader_status = Gauge(
            "leader_election_master_status",
            "1 while this replica leads (holds the lease), else 0",
            ["name"],
            registry=r,
        )
        self.leader_status.labels(name=leader_name).set(0)
        self.xo_request_duration_seconds = Histogram(
            "xenorchestra_request_duration_seconds",
            "Xen Orchestra REST request duration by endpoint",
            ["endpoint"],
            buckets=_XO_BUCKETS,
            registry=r,
        )
        self.xo_request_errors = Counter(
            "xenorchestra_request_errors",
            "Failed Xen Orchestra REST requests by endpoint and error kind",
            ["endpoint", "error"],
            registry=r,
        )
        self._add_operations_series(r)

    def _add_operations_series(self, r: CollectorRegistry) -> None:
        """The series the shipped alerts and dashboard read (deploy/monitoring/).

        Every labelled one is created at start for each label value it can take,
        so a rule sees 0 rather than nothing before the first event.
        """
        self.nodes_waiting = Gauge(
            "xenorchestra_ccm_nodes_waiting_initialization",
            "Nodes carrying the uninitialized taint, as the cloud-node controller last saw them",
            registry=r,
        )
        self.oldest_waiting_created = Gauge(
            "xenorchestra_ccm_oldest_waiting_node_creation_timestamp_seconds",
            "Creation time (Unix seconds) of the oldest node waiting for initialization; "
            "0 when none waits",
            registry=r,
        )
        self.nodes_unregistered = Gauge(
            "xenorchestra_ccm_nodes_without_provider_id",
            "Nodes with neither a providerID nor the uninitialized taint (kubelet without "
            "--cloud-provider=external: never initialized)",
            registry=r,
        )
        self.node_deletions = Counter(
            "xenorchestra_ccm_node_deletions",
            "Node deletions decided by the lifecycle controller, by outcome",
            ["outcome"],
            registry=r,
        )
        for outcome in DELETION_OUTCOMES:
            self.node_deletions.labels(outcome=outcome)
        self.breaker_tripped = Gauge(
            "xenorchestra_ccm_deletion_breaker_tripped",
            "1 once the deletion breaker tripped (paused until an operator resets it), else 0",
            registry=r,
        )
        self.breaker_deletions = Gauge(
            "xenorchestra_ccm_deletion_breaker_window_deletions",
            "Node deletions within the breaker's sliding window",
            registry=r,
        )
        self.breaker_limit = Gauge(
            "xenorchestra_ccm_deletion_breaker_limit",
            "Deletions the breaker allows within its window (max(minimum, percent of nodes))",
            registry=r,
        )
        self.kube_events = Counter(
            "xenorchestra_ccm_events",
            "Kubernetes Events about nodes, by type and what became of them",
            ["type", "result"],
            registry=r,
        )
        for type_ in EVENT_TYPES:
            for result in EVENT_RESULTS:
                self.kube_events.labels(type=type_, result=result)
        self.stream_state = Gauge(
            "xenorchestra_event_stream_state",
            "1 for the current state of the XO change stream, 0 for the others",
            ["state"],
            registry=r,
        )
        self._set_stream_state("stopped")
        self.events_supported = Gauge(
            "xenorchestra_events_supported",
            "1 once XO served its event stream, 0 while unknown or after XO answered "
            "404 (older than 5.113: the CCM polls)",
            registry=r,
        )
        self.last_xo_success = Gauge(
            "xenorchestra_last_successful_request_timestamp_seconds",
            "When XO last answered a request (Unix seconds; a 404 counts as an answer); "
            "the CCM's start time until then",
            registry=r,
        )
        self.last_xo_success.set(time.time())

    def _set_stream_state(self, state: str) -> None:
        for known in STREAM_STATES:
            self.stream_state.labels(state=known).set(1 if known == state else 0)

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: the controllers report several
        series per node, and each ``labels`` call validates and locks."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- domain.ports.Metrics ---------------------------------------------
    def queue_added(self, *, queue: str) -> None:
        self._child(self.queue_adds, queue).inc()

    def queue_retried(self, *, queue: str) -> None:
        self._child(self.queue_retries, queue).inc()

    def queue_depth(self, *, queue: str, depth: int) -> None:
        self._child(self.queue_depth_gauge, queue).set(depth)
        if queue not in self._queues:
            # A queue reports its depth when it is created: its other series start at 0
            # then (once: depth is reported on every add and get).
            self._queues.add(queue)
            self.queue_adds.labels(name=queue)
            self.queue_retries.labels(name=queue)
            self.queue_work_duration_seconds.labels(name=queue)

    def queue_work_duration(self, *, queue: str, seconds: float) -> None:
        self._child(self.queue_work_duration_seconds, queue).observe(seconds)

    def queue_waited(self, *, queue: str, seconds: float) -> None:
        self._child(self.queue_duration_seconds, queue).observe(seconds)

    def queue_in_progress(self, *, queue: str, probe: Callable[[], tuple[float, float]]) -> None:
        self.queue_unfinished_seconds.labels(queue).set_function(lambda: probe()[0])
        self.queue_longest_seconds.labels(queue).set_function(lambda: probe()[1])

    def controllers_running(self, *, names: Sequence[str], running: bool) -> None:
        for name in names:
            self.controllers_gauge.labels(_MANAGER, name).set(1 if running else 0)

    def observe_kube_request(
        self, *, host: str, method: str, code: str, seconds: float, waited: float
    ) -> None:
        """One request attempt to the API server (``kubernetes.client`` reports each):
        client-go's ``rest_client_*`` series, under the names the Go CCM serves."""
        self._child(self.rest_requests, code, host, method).inc()
        self._child(self.rest_request_seconds, host, method).observe(seconds)
        self._child(self.rest_limiter_seconds, host, method).observe(waited)

    def node_synced(self, *, controller: str, result: str) -> None:
        self._child(self.node_syncs, controller, result).inc()

    def taint_removal_delay(self, *, seconds: float) -> None:
        self.taint_removal_delay_seconds.observe(seconds)

    def initial_sync_delay(self, *, seconds: float) -> None:
        self.initial_sync_delay_seconds.observe(seconds)

    def leader(self, *, is_leader: bool) -> None:
        self.leader_status.labels(name=self._leader_name).set(1 if is_leader else 0)

    def declare_node_syncs(self, *, controller: str, results: Sequence[str]) -> None:
        for result in results:
            self.node_syncs.labels(controller=controller, result=result)

    def nodes_waiting_initialization(
        self, *, count: int, oldest_created_at: datetime | None
    ) -> None:
        self.nodes_waiting.set(count)
        created = oldest_created_at.timestamp() if oldest_created_at and count else 0.0
        self.oldest_waiting_created.set(created)

    def nodes_without_provider_id(self, *, count: int) -> None:
        self.nodes_unregistered.set(count)

    def node_deletion(self, *, outcome: str) -> None:
        self.node_deletions.labels(outcome=outcome).inc()

    def deletion_breaker(self, *, tripped: bool, deletions_in_window: int, limit: int) -> None:
        self.breaker_tripped.set(1 if tripped else 0)
        self.breaker_deletions.set(deletions_in_window)
        self.breaker_limit.set(limit)

    # -- the Kubernetes event recorder -------------------------------------
    def observe_kubernetes_event(self, *, type: str, result: str) -> None:
        """One node event: ``recorded``, ``dropped`` (spam filter) or ``failed``."""
        self._child(self.kube_events, type, result).inc()

    # -- the XO adapter -----------------------------------------------------
    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        """One XO request: its duration, and its error kind when it failed.

        ``endpoint`` must be a template (``/rest/v0/vms/{id}``), never a URL
        with ids in it, or the series count grows with the inventory.
        """
        self._child(self.xo_request_duration_seconds, endpoint).observe(seconds)
        if error is not None:
            self.xo_request_errors.labels(endpoint=endpoint, error=error).inc()
        if error in _ANSWERED:
            self.last_xo_success.set(time.time())

    def observe_xo_event_stream(
        self, *, state: str | None = None, supported: bool | None = None
    ) -> None:
        """The change stream's state (one of STREAM_STATES) and, when XO just told,
        whether it serves events; None leaves either as it is."""
        if state is not None:
            self._set_stream_state(state)
        if supported is not None:
            self.events_supported.set(1 if supported else 0)

    # -- exposition ---------------------------------------------------------
    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
