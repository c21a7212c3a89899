"""The production adapters, built for the container: one function per adapter.

Each function is what one container provider calls, so the container reads
as a table and this module holds the construction details (and the only
imports of the real adapters). A function that opens something is an async
generator: the container runs it as a ``Resource``, and leaving its
``async with`` (after the ``yield``) is that adapter's teardown, run by
``shutdown_resources()``.
Nothing here is called at import time, and an embedder who overrides an
adapter never builds (or connects) the one it replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from adapters.config import CloudConfig
from adapters.kubernetes import (
    ClientSettings,
    KubeClient,
    KubernetesBreakerStore,
    KubernetesEventRecorder,
    KubernetesNodeStore,
    LeaseLeaderElector,
    connect,
)
from adapters.kubernetes.client import KubeRequestObserver
from adapters.kubernetes.csr import KubernetesCertificateRequests
from adapters.kubernetes.event_queue import QueuedEventRecorder
from adapters.kubernetes.fence import LeadershipFence
from adapters.observability.metrics import PrometheusMetrics
from adapters.xenorchestra import RetryPolicy, XOInventory, XORequestObserver
from application.change_router import ChangeRouter
from application.controllers import (
    CLOUD_NODE,
    CLOUD_NODE_CSR_APPROVAL,
    CLOUD_NODE_LABEL_SYNC,
    CLOUD_NODE_LIFECYCLE,
    EnabledControllers,
)
from application.manager import Runnable, staggered
from domain.freshness import Freshness
from domain.options import CCMOptions
from domain.ports import Inventory, NodeStore
from entrypoints import serving
from entrypoints.flags.settings import Settings
from entrypoints.readiness import Readiness


def ccm_options(*, config: CloudConfig, settings: Settings) -> CCMOptions:
    """The domain options: the cloud config's, with ``--dry-run-deletions`` applied."""
    return config.options(dry_run_deletions=settings.dry_run_deletions)


# -- clients -------------------------------------------------------------------
def kube_client_settings(*, settings: Settings) -> ClientSettings:
    """The API client's budget, ``--kube-api-qps`` / ``--kube-api-burst`` (the one way
    they reach the client), and its pool: as many threads as requests the controllers
    may have in flight (``Settings.api_request_workers``)."""
    return ClientSettings(
        qps=settings.kube_api_qps,
        burst=settings.kube_api_burst,
        workers=settings.api_request_workers,
    )


async def kube_client(
    *,
    settings: Settings,
    client_settings: ClientSettings,
    name: str = "kube",
    observer: KubeRequestObserver | None = None,
    fence: LeadershipFence | None = None,
) -> AsyncIterator[KubeClient]:
    """The API client; the kubeconfig is read now, so a bad one fails at startup
    (KubeConfigError). ``observer`` hears of every request (its siblings' too);
    ``fence`` is asked before each of its writes (its siblings have none)."""
    client = await connect(
        settings.kubeconfig,
        settings=client_settings,
        name=name,
        master=settings.master,
        observer=observer,
        fence=fence,
    )
    async with client:
        yield client


async def leader_client(*, client: KubeClient) -> AsyncIterator[KubeClient]:
    """A client of its own for leader election: its own pool and request budget,
    so controllers saturating theirs can never delay a renewal."""
    async with client.sibling("leader-election") as sibling:
        yield sibling


async def xo_inventory(
    *, config: CloudConfig, observer: XORequestObserver, retry: RetryPolicy
) -> AsyncIterator[XOInventory]:
    """The XO REST adapter (its connection pool closes at teardown)."""
    async with XOInventory.from_config(config, observer=observer, retry=retry) as inventory:
        yield inventory


def xo_request_observer(*, metrics: PrometheusMetrics) -> XORequestObserver:
    """Who hears of every XO request: the metrics (``doctor`` counts them instead)."""
    return metrics


# -- ports ----------------------------------------------------------------------
def prometheus_metrics(*, settings: Settings) -> PrometheusMetrics:
    return PrometheusMetrics(leader_name=settings.leader_elect_resource_name)


async def node_store(
    *, client: KubeClient, settings: Settings
) -> AsyncIterator[KubernetesNodeStore]:
    """The Node cache: listing and watching from start until teardown, every
    cached Node re-delivered after ``--min-resync-period`` (0: never)."""
    async with KubernetesNodeStore(client, resync_period=settings.min_resync_period) as store:
        yield store


async def event_client(*, client: KubeClient, settings: Settings) -> AsyncIterator[KubeClient]:
    """The node events' own client: ``--event-qps`` / ``--event-burst`` (0: unlimited),
    so events never spend the budget registration needs, nor wait behind it."""
    budget = replace(
        client.settings,
        qps=float(settings.event_qps),
        burst=max(1, settings.event_burst),
        workers=1,  # the queue has one sender: one request at a time
    )
    async with client.sibling("events", budget) as sibling:
        yield sibling


async def event_recorder(
    *, client: KubeClient, observer: PrometheusMetrics | None = None
) -> AsyncIterator[QueuedEventRecorder]:
    """Node events, queued: a controller never waits for one; at teardown what is
    queued gets a few seconds to be written."""
    writer = KubernetesEventRecorder(client, observer=observer)
    async with QueuedEventRecorder(writer, observer=observer) as recorder:
        yield recorder


def breaker_store(*, client: KubeClient, settings: Settings) -> KubernetesBreakerStore:
    """The deletion breaker's state: annotations of the Lease
    ``<--leader-elect-resource-name>-deletion-breaker`` in the leader Lease's namespace
    (there with ``--leader-elect=false`` too: the shipped Roles grant it)."""
    return KubernetesBreakerStore(
        client,
        leader_lease=settings.leader_elect_resource_name,
        namespace=settings.leader_elect_resource_namespace,
    )


async def certificate_requests(
    *, client: KubeClient
) -> AsyncIterator[KubernetesCertificateRequests]:
    """The kubelet serving CSRs: listing and watching from start until teardown (only
    when the CSR approver runs)."""
    async with KubernetesCertificateRequests(client) as requests:
        yield requests


def csr_approval_mode(*, settings: Settings) -> str:
    """The ``cloud_node_csr_approval`` selector's key: ``on`` when ``--controllers``
    names the approver (``*`` does not), else ``off`` (nothing about CSRs is built)."""
    return "on" if CLOUD_NODE_CSR_APPROVAL in settings.controllers else "off"


def election_mode(*, settings: Settings) -> str:
    """The ``leader_elector`` selector's key: ``lease`` or ``sole`` (``--leader-elect=false``)."""
    return "lease" if settings.leader_elect else "sole"


def write_fence(*, settings: Settings) -> LeadershipFence | None:
    """The fence of the controllers' writes: with leader election, none sent once this
    replica may no longer lead (:mod:`adapters.kubernetes.fence`); without, none."""
    return LeadershipFence() if settings.leader_elect else None


async def lease_elector(
    *, settings: Settings, client: KubeClient, fence: LeadershipFence | None = None
) -> AsyncIterator[LeaseLeaderElector]:
    """Lease election with the ``--leader-elect-*`` flags, moving ``fence``; teardown
    stops renewing (a clean shutdown has released the Lease already, through the gate)."""
    elector = LeaseLeaderElector(
        client,
        name=settings.leader_elect_resource_name,
        namespace=settings.leader_elect_resource_namespace,
        lease_duration=settings.leader_elect_lease_duration,
        renew_deadline=settings.leader_elect_renew_deadline,
        retry_period=settings.leader_elect_retry_period,
        fence=fence,
    )
    try:
        yield elector
    finally:
        await elector.stop()


async def review_client(*, settings: Settings, purpose: str) -> AsyncIterator[KubeClient | None]:
    """The client of the secure port's TokenReviews (``purpose="authentication"``) or
    SubjectAccessReviews (``"authorization"``); None without one, or with
    ``--secure-port=0`` (Go applies delegation only when serving)."""
    if settings.secure_port == 0:
        yield None
        return
    kubeconfig = (
        settings.authentication_kubeconfig
        if purpose == "authentication"
        else settings.authorization_kubeconfig
    )
    client = await serving.review_client(kubeconfig, purpose=purpose)
    if client is None:
        yield None
        return
    async with client:
        yield client


async def health_server(
    *,
    settings: Settings,
    metrics: PrometheusMetrics,
    readiness: Readiness,
    authentication: KubeClient | None,
    authorization: KubeClient | None,
) -> AsyncIterator[serving.SecurePort]:
    """``/healthz``, ``/livez``, ``/readyz`` and ``/metrics`` over HTTPS on
    ``--bind-address:--secure-port``, behind delegated authentication and authorization
    (SecureServingError when it cannot be set up or bound)."""
    port = await serving.secure_port(
        settings,
        metrics=metrics,
        readiness=readiness,
        authentication=authentication,
        authorization=authorization,
    )
    try:
        await port.start()
    except OSError as err:
        raise serving.SecureServingError(
            f"{settings.bind_address}:{settings.secure_port}: {err}"
        ) from None
    try:
        yield port
    finally:
        await port.stop()


# -- the controllers' runtime ------------------------------------------------------
def change_router(
    *,
    inventory: Inventory,
    nodes: NodeStore,
    controllers: EnabledControllers,
    freshness: Freshness,
) -> ChangeRouter:
    """The XO change router, poking only the enabled controllers."""
    return ChangeRouter(inventory=inventory, nodes=nodes, pokes=controllers, freshness=freshness)


def enabled_runnables(
    *, controllers: EnabledControllers, router: ChangeRouter, start_interval: float = 0.0
) -> list[Runnable]:
    """What the leader gate runs: the enabled controllers, then the change router
    (it runs only while leading, like they do), started one by one
    ``--controller-start-interval`` apart (jittered, as Go does; 0: all at once)."""
    c = controllers
    named: dict[str, Runnable] = {
        CLOUD_NODE: c.cloud_node,
        CLOUD_NODE_LIFECYCLE: c.lifecycle,
        CLOUD_NODE_LABEL_SYNC: c.label_sync,
    }
    if c.csr_approval is not None:
        named[CLOUD_NODE_CSR_APPROVAL] = c.csr_approval
    runnables = [*(runnable for name, runnable in named.items() if c.on(name)), router]
    return staggered(runnables, start_interval)
