"""The Metrics port exported to Prometheus.

Metric names follow what Kubernetes controller managers already expose, so
the dashboards and alerts written for the reference CCM keep working:
client-go's ``workqueue_*`` family (label ``name``), cloud-provider's
``cloud_provider_taint_removal_delay_seconds`` and component-base's
``leader_election_master_status``. CCM- and XO-specific series carry a
``xenorchestra_`` prefix.

Each instance owns its ``CollectorRegistry`` (never the process-global
one), so tests and embedders can create as many as they like without
"Duplicated timeseries" errors.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

#: client-go's workqueue duration buckets: 1 µs to 10 s, decades.
_WORK_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: Node creation -> taint removed: seconds when XO answers, minutes when a VM lags.
_TAINT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0)
#: XO REST calls: tens of milliseconds usually, up to the client timeout.
_XO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self._leader_name = leader_name
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
        self.node_syncs = Counter(
            "xenorchestra_ccm_node_syncs",
            "Node syncs by controller and result",
            ["controller", "result"],
            registry=r,
        )
        self.taint_removal_delay_seconds = Histogram(
            "cloud_provider_taint_removal_delay_seconds",
            "Seconds from node creation until the cloud-node controller removed the "
            "uninitialized taint",
            buckets=_TAINT_BUCKETS,
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

    # -- domain.ports.Metrics ---------------------------------------------
    def queue_added(self, *, queue: str) -> None:
        self.queue_adds.labels(name=queue).inc()

    def queue_retried(self, *, queue: str) -> None:
        self.queue_retries.labels(name=queue).inc()

    def queue_depth(self, *, queue: str, depth: int) -> None:
        self.queue_depth_gauge.labels(name=queue).set(depth)

    def queue_work_duration(self, *, queue: str, seconds: float) -> None:
        self.queue_work_duration_seconds.labels(name=queue).observe(seconds)

    def node_synced(self, *, controller: str, result: str) -> None:
        self.node_syncs.labels(controller=controller, result=result).inc()

    def taint_removal_delay(self, *, seconds: float) -> None:
        self.taint_removal_delay_seconds.observe(seconds)

    def leader(self, *, is_leader: bool) -> None:
        self.leader_status.labels(name=self._leader_name).set(1 if is_leader else 0)

    # -- the XO adapter -----------------------------------------------------
    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        """One XO request: its duration, and its error kind when it failed.

        ``endpoint`` must be a template (``/rest/v0/vms/{id}``), never a URL
        with ids in it, or the series count grows with the inventory.
        """
        self.xo_request_duration_seconds.labels(endpoint=endpoint).observe(seconds)
        if error is not None:
            self.xo_request_errors.labels(endpoint=endpoint, error=error).inc()

    # -- exposition ---------------------------------------------------------
    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
