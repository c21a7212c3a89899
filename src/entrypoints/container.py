"""The composition root: one provider per port, everything else built from them.

Production wiring talks to Xen Orchestra over HTTP and to the Kubernetes API.
Any adapter is replaced with one ``override`` call, which is how the demo runs
on the in-memory adapters and how a larger platform embeds the controllers::

    container = Container(settings=settings, cloud_config=config)
    container.inventory.override(my_inventory)

Nothing is constructed, and no I/O happens, until a provider is called.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.config import CloudConfig
from adapters.system_clock import SystemClock
from application.change_router import ChangeRouter
from application.controllers import (
    CLOUD_NODE,
    CLOUD_NODE_LABEL_SYNC,
    CLOUD_NODE_LIFECYCLE,
    CloudNodeController,
    CloudNodeLabelSyncController,
    CloudNodeLifecycleController,
)
from application.manager import LeaderGate, Runnable
from domain.services import LabelSyncService, LifecycleService, RegistrationService
from entrypoints import wiring
from entrypoints.flags import Settings


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    cloud_config = providers.Dependency(instance_of=CloudConfig)
    options = providers.Singleton(
        lambda config, settings: config.options(dry_run_deletions=settings.dry_run_deletions),
        cloud_config,
        settings,
    )

    # -- ports ----------------------------------------------------------------
    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(wiring.prometheus_metrics, settings=settings)
    inventory = providers.Singleton(wiring.xo_inventory, config=cloud_config, observer=metrics)
    kube_api = providers.Singleton(wiring.kube_api, settings=settings)
    nodes = providers.Singleton(wiring.kube_node_store, api=kube_api)
    events = providers.Singleton(wiring.kube_event_recorder, api=kube_api)
    leader_api = providers.Singleton(wiring.leader_api, api=kube_api)
    leader_elector = providers.Singleton(wiring.leader_elector, settings=settings, api=leader_api)

    # -- services -------------------------------------------------------------
    registration = providers.Singleton(
        RegistrationService,
        inventory=inventory,
        nodes=nodes,
        events=events,
        clock=clock,
        options=options,
    )
    lifecycle = providers.Singleton(
        LifecycleService,
        inventory=inventory,
        nodes=nodes,
        events=events,
        clock=clock,
        options=options,
    )
    label_sync = providers.Singleton(
        LabelSyncService, inventory=inventory, nodes=nodes, events=events, options=options
    )

    # -- controllers ----------------------------------------------------------
    cloud_node = providers.Singleton(
        CloudNodeController,
        service=registration,
        nodes=nodes,
        clock=clock,
        metrics=metrics,
        workers=settings.provided.concurrent_node_syncs,
        address_sync_period=settings.provided.node_status_update_frequency,
    )
    cloud_node_lifecycle = providers.Singleton(
        CloudNodeLifecycleController,
        service=lifecycle,
        clock=clock,
        metrics=metrics,
        period=settings.provided.node_monitor_period,
    )
    cloud_node_label_sync = providers.Singleton(
        CloudNodeLabelSyncController,
        service=label_sync,
        clock=clock,
        metrics=metrics,
        period=settings.provided.node_status_update_frequency,
    )
    gate = providers.Singleton(LeaderGate, elector=leader_elector, metrics=metrics)


def enabled_runnables(container: Container) -> list[Runnable]:
    """The controllers ``--controllers`` enables, plus the XO change router
    that pokes them (it only runs while leading, like they do)."""
    enabled = set(container.settings().controllers)
    cloud_node = container.cloud_node() if CLOUD_NODE in enabled else None
    lifecycle = container.cloud_node_lifecycle() if CLOUD_NODE_LIFECYCLE in enabled else None
    label_sync = container.cloud_node_label_sync() if CLOUD_NODE_LABEL_SYNC in enabled else None
    runnables: list[Runnable] = [c for c in (cloud_node, lifecycle, label_sync) if c is not None]
    router = ChangeRouter(
        inventory=container.inventory(),
        nodes=container.nodes(),
        on_vm_changed=[label_sync.trigger] if label_sync else [],
        on_vm_removed=[lifecycle.trigger] if lifecycle else [],
        on_new_vm=[cloud_node.trigger] if cloud_node else [],
        on_resync=[label_sync.request_full_pass] if label_sync else [],
    )
    runnables.append(router)
    return runnables


def in_memory_container(settings: Settings | None = None) -> Container:
    """A container whose every port is an in-memory adapter: for the demo,
    tests, and platforms that plug their own adapters in one by one."""
    from adapters.testing.memory import (
        InMemoryEventRecorder,
        InMemoryInventory,
        InMemoryLeaderElector,
        InMemoryMetrics,
        InMemoryNodeStore,
    )

    container = Container(
        settings=settings or Settings(leader_elect=False),
        cloud_config=CloudConfig(url="http://in-memory.invalid", token="in-memory"),
    )
    container.inventory.override(InMemoryInventory())
    container.nodes.override(InMemoryNodeStore())
    container.events.override(InMemoryEventRecorder())
    container.metrics.override(InMemoryMetrics())
    container.leader_elector.override(InMemoryLeaderElector(leading=True))
    container.kube_api.override(providers.Object(None))
    container.leader_api.override(providers.Object(None))
    return container
