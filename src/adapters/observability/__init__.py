"""Prometheus metrics and the health/metrics HTTP endpoints.

- :class:`PrometheusMetrics`: the ``Metrics`` port (own registry per instance)
  plus ``observe_xo_request`` for the XO adapter.
- :class:`HealthServer`: ``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` on aiohttp.
"""

from adapters.observability.health import HealthServer, ReadinessCheck
from adapters.observability.metrics import PrometheusMetrics

__all__ = ["HealthServer", "PrometheusMetrics", "ReadinessCheck"]
