"""Builders for the production adapters, called lazily by the container.

Imports happen inside the builders so that an embedder who overrides an
adapter never imports (or configures) the one it replaced.
"""

from __future__ import annotations

from typing import Any

from adapters.config import CloudConfig
from entrypoints.flags import Settings


def prometheus_metrics(*, settings: Settings) -> Any:
    from adapters.observability.metrics import PrometheusMetrics

    return PrometheusMetrics(leader_name=settings.leader_elect_resource_name)


def xo_inventory(*, config: CloudConfig, observer: Any) -> Any:
    from adapters.xenorchestra import XOInventory

    return XOInventory.from_config(config, observer=observer)


def kube_api(*, settings: Settings) -> Any:
    from adapters.kubernetes.client import KubeAPI

    return KubeAPI.from_kubeconfig(
        settings.kubeconfig, qps=settings.kube_api_qps, burst=settings.kube_api_burst
    )


def kube_node_store(*, api: Any) -> Any:
    from adapters.kubernetes.nodes import KubernetesNodeStore

    return KubernetesNodeStore(api)


def kube_event_recorder(*, api: Any) -> Any:
    from adapters.kubernetes.events import KubernetesEventRecorder

    return KubernetesEventRecorder(api)


def leader_api(*, api: Any) -> Any:
    """A client of its own for leader election: its own pool and request budget,
    so controllers saturating theirs can never delay a renewal."""
    return api.sibling("leader-election")


def leader_elector(*, settings: Settings, api: Any) -> Any:
    if not settings.leader_elect:
        from adapters.sole_leader import SoleLeader

        return SoleLeader()
    from adapters.kubernetes.leader import LeaseLeaderElector

    return LeaseLeaderElector(
        api,
        name=settings.leader_elect_resource_name,
        namespace=settings.leader_elect_resource_namespace,
        lease_duration=settings.leader_elect_lease_duration,
        renew_deadline=settings.leader_elect_renew_deadline,
        retry_period=settings.leader_elect_retry_period,
    )
