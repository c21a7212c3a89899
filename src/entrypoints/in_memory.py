"""The CCM on in-memory ports: for the unit tests, the demo and embedders.

Two blocks override the :class:`~entrypoints.container.Container`'s providers
by name (``container.override(block)``), so a caller keeps the side it does not
swap: the demo runs the in-memory XO against a real kube-apiserver by
overriding only :class:`InMemoryXO`. Every adapter comes from
:mod:`adapters.memory`; each keeps its state in plain attributes a
test can assert on (``container.nodes().nodes``...).
"""

from __future__ import annotations

from dependency_injector import containers, providers
from pydantic import SecretStr

from adapters.config import CloudConfig
from adapters.memory import (
    InMemoryBreakerStore,
    InMemoryCertificateRequests,
    InMemoryEventRecorder,
    InMemoryInventory,
    InMemoryLeaderElector,
    InMemoryMetrics,
    InMemoryNodeStore,
)
from entrypoints.container import Container
from entrypoints.flags.settings import Settings

#: A cloud config that names no real XO (nothing reads it once the XO side is in memory).
PLACEHOLDER_CONFIG = CloudConfig(url="http://in-memory.invalid", token=SecretStr("in-memory"))


class InMemoryXO(containers.DeclarativeContainer):
    """Xen Orchestra in memory."""

    inventory = providers.Singleton(InMemoryInventory)


class InMemoryCluster(containers.DeclarativeContainer):
    """The cluster side in memory: Nodes, events, leadership (always held), metrics,
    the deletion breaker's state, kubelet serving CSRs."""

    nodes = providers.Singleton(InMemoryNodeStore)
    certificate_requests = providers.Singleton(InMemoryCertificateRequests)
    breaker_store = providers.Singleton(InMemoryBreakerStore)
    events = providers.Singleton(InMemoryEventRecorder)
    leader_elector = providers.Singleton(InMemoryLeaderElector, leading=True)
    metrics = providers.Singleton(InMemoryMetrics)


def in_memory_container(
    settings: Settings | None = None, *, cloud_config: CloudConfig | None = None
) -> Container:
    """A container whose every port is in memory; override any one to plug your own."""
    container = Container(
        settings=settings or Settings(leader_elect=False),
        cloud_config=cloud_config or PLACEHOLDER_CONFIG,
    )
    container.override(InMemoryXO())
    container.override(InMemoryCluster())
    return container
