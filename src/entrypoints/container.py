"""The composition root: one provider per port, everything else built from them.

The process, the demo, ``doctor`` and the tests all build the CCM here; none
of them connects to anything by hand. Its shape:

- inputs: ``settings`` (the flags) and ``cloud_config`` (the XO config), plus
  ``kube_client_settings``, ``xo_retry`` and ``xo_observer`` for callers with
  other budgets (``doctor``);
- clients and servers are ``Resource`` providers: built on first use, each
  with its own teardown, all closed by ``await container.shutdown_resources()``
  (dependents first: :func:`shutdown`). Two phases are started by type
  (:func:`start`): ``Connection`` opens the Kubernetes client and the XO
  adapter; ``Service`` starts the Node cache and the secure port (its
  TokenReview and SubjectAccessReview clients are Resources too);
- ``leader_elector`` is a ``Selector``: a Lease, or ``SoleLeader`` with
  ``--leader-elect=false``;
- services, controllers, the change router and the leader gate are
  ``Singleton`` providers over the ports.

Swapping an adapter is one ``override`` (``container.inventory.override(mine)``);
:func:`entrypoints.in_memory.in_memory_container` swaps whole sides at once.
Nothing is constructed, and no I/O happens, until a provider is called. A
provider that depends on a ``Resource`` returns an awaitable: :func:`provide`
resolves either kind.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar, cast

from dependency_injector import containers, providers

from adapters.config import CloudConfig
from adapters.sole_leader import SoleLeader
from adapters.system_clock import SystemClock
from adapters.xenorchestra import RetryPolicy
from application.controllers import (
    CloudNodeController,
    CloudNodeLabelSyncController,
    CloudNodeLifecycleController,
    EnabledControllers,
)
from application.csr_approval import CloudNodeCSRApprovalController
from application.manager import LeaderGate
from application.snapshots import SharedSnapshots
from domain.freshness import Freshness
from domain.services import LabelSyncService, LifecycleService, RegistrationService
from domain.services.csr_approval import CSRApprovalService
from entrypoints import adapter_builders as build
from entrypoints.flags.settings import Settings
from entrypoints.readiness import Readiness

T = TypeVar("T")


class Connection(providers.Resource[T]):
    """A client opened at startup, before anything runs (a bad kubeconfig fails here)."""


class Service(providers.Resource[T]):
    """Started once Xen Orchestra answered the startup check."""


async def provide(provider: providers.Provider[T]) -> T:
    """What ``provider`` provides, awaited when it depends on an async ``Resource``."""
    value: object = provider()
    if inspect.isawaitable(value):
        value = await value
    return cast(T, value)


async def start(container: containers.Container, phase: type[providers.Resource[Any]]) -> None:
    """Initialize every ``Resource`` of type ``phase`` (:class:`Connection`, :class:`Service`)."""
    pending = container.init_resources(phase)
    if pending is not None:
        await pending


async def shutdown(container: containers.Container) -> None:
    """Tear down every ``Resource`` that was initialized, dependents first."""
    pending = container.shutdown_resources()
    if pending is not None:
        await pending


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    cloud_config = providers.Dependency(instance_of=CloudConfig)
    options = providers.Singleton(build.ccm_options, config=cloud_config, settings=settings)
    kube_client_settings = providers.Singleton(build.kube_client_settings, settings=settings)
    xo_retry = providers.Singleton(RetryPolicy)

    metrics = providers.Singleton(build.prometheus_metrics, settings=settings)

    # -- clients ----------------------------------------------------------------
    write_fence = providers.Singleton(build.write_fence, settings=settings)
    kube_client = Connection(
        build.kube_client,
        settings=settings,
        client_settings=kube_client_settings,
        observer=metrics,
        fence=write_fence,
    )
    leader_client = providers.Resource(build.leader_client, client=kube_client)
    event_client = providers.Resource(build.event_client, client=kube_client, settings=settings)

    # -- ports ------------------------------------------------------------------
    clock = providers.Singleton(SystemClock)
    xo_observer = providers.Singleton(build.xo_request_observer, metrics=metrics)
    inventory = Connection(
        build.xo_inventory, config=cloud_config, observer=xo_observer, retry=xo_retry
    )
    nodes = Service(build.node_store, client=kube_client, settings=settings)
    events = providers.Resource(build.event_recorder, client=event_client, observer=metrics)
    breaker_store = providers.Singleton(build.breaker_store, client=kube_client, settings=settings)
    # Started only when the CSR approver is provided (it is off by default): a plain
    # Resource, not a Service, so nothing lists CSRs for a CCM that never approves.
    certificate_requests = providers.Resource(build.certificate_requests, client=kube_client)
    leader_elector = providers.Selector(
        providers.Callable(build.election_mode, settings=settings),
        lease=providers.Resource(
            build.lease_elector, settings=settings, client=leader_client, fence=write_fence
        ),
        sole=providers.Singleton(SoleLeader),
    )

    # -- servers ----------------------------------------------------------------
    readiness = providers.Singleton(Readiness, nodes=nodes, inventory=inventory)
    # The secure port's delegation clients: --authentication-kubeconfig and
    # --authorization-kubeconfig, else in-cluster, else none (never --kubeconfig).
    authentication_client = providers.Resource(
        build.review_client, settings=settings, purpose="authentication"
    )
    authorization_client = providers.Resource(
        build.review_client, settings=settings, purpose="authorization"
    )
    health = Service(
        build.health_server,
        settings=settings,
        metrics=metrics,
        readiness=readiness,
        authentication=authentication_client,
        authorization=authorization_client,
    )

    # -- what XO said, and when ------------------------------------------------------
    # One freshness ledger for every read of XO (domain.freshness): each write is
    # computed from an answer at least as new as the last one applied or announced.
    freshness = providers.Singleton(Freshness, clock=clock)
    # Snapshots shared by readers that want one at about the same time, each judged
    # by the ledger like any answer: the label and address passes (they start
    # together) and the nodes that join in a burst.
    status_snapshots = providers.Singleton(
        SharedSnapshots, inventory=inventory, freshness=freshness, clock=clock, max_age=2.0
    )
    burst_snapshots = providers.Singleton(
        SharedSnapshots, inventory=inventory, freshness=freshness, clock=clock, max_age=10.0
    )

    # -- services ---------------------------------------------------------------
    registration = providers.Singleton(
        RegistrationService,
        inventory=inventory,
        nodes=nodes,
        events=events,
        clock=clock,
        options=options,
        freshness=freshness,
        snapshots=status_snapshots,
        burst_snapshots=burst_snapshots,
    )
    lifecycle = providers.Singleton(
        LifecycleService,
        inventory=inventory,
        nodes=nodes,
        events=events,
        clock=clock,
        breaker=breaker_store,
        options=options,
        metrics=metrics,
        freshness=freshness,
    )
    label_sync = providers.Singleton(
        LabelSyncService,
        inventory=inventory,
        nodes=nodes,
        events=events,
        options=options,
        freshness=freshness,
        snapshots=status_snapshots,
    )
    # Reads the VM from XO itself by id (never a shared snapshot), judged by the ledger.
    csr_approval = providers.Singleton(
        CSRApprovalService,
        requests=certificate_requests,
        nodes=nodes,
        inventory=inventory,
        events=events,
        options=options,
        freshness=freshness,
    )

    # -- controllers --------------------------------------------------------------
    cloud_node = providers.Singleton(
        CloudNodeController,
        service=registration,
        nodes=nodes,
        workers=settings.provided.concurrent_node_syncs,
        address_sync_period=settings.provided.node_status_update_frequency,
        address_workers=settings.provided.status_update_workers,
        clock=clock,
        metrics=metrics,
    )
    cloud_node_lifecycle = providers.Singleton(
        CloudNodeLifecycleController,
        service=lifecycle,
        period=settings.provided.node_monitor_period,
        clock=clock,
        metrics=metrics,
    )
    cloud_node_label_sync = providers.Singleton(
        CloudNodeLabelSyncController,
        service=label_sync,
        period=settings.provided.node_status_update_frequency,
        clock=clock,
        metrics=metrics,
    )
    cloud_node_csr_approval = providers.Selector(
        providers.Callable(build.csr_approval_mode, settings=settings),
        on=providers.Singleton(
            CloudNodeCSRApprovalController,
            service=csr_approval,
            requests=certificate_requests,
            workers=settings.provided.concurrent_node_syncs,
            clock=clock,
            metrics=metrics,
        ),
        off=providers.Object(None),
    )
    controllers = providers.Singleton(
        EnabledControllers,
        enabled=settings.provided.controllers,
        cloud_node=cloud_node,
        lifecycle=cloud_node_lifecycle,
        label_sync=cloud_node_label_sync,
        csr_approval=cloud_node_csr_approval,
    )
    change_router = providers.Singleton(
        build.change_router,
        inventory=inventory,
        nodes=nodes,
        controllers=controllers,
        freshness=freshness,
    )
    runnables = providers.Singleton(
        build.enabled_runnables,
        controllers=controllers,
        router=change_router,
        start_interval=settings.provided.controller_start_interval,
    )
    gate = providers.Singleton(LeaderGate, elector=leader_elector, metrics=metrics)
