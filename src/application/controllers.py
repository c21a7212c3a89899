"""The three controllers of the Go CCM, wired like their Kubernetes counterparts
(and the names of every controller, the CSR approver's included)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from application.manager import Runnable
from application.periodic import run_every
from application.rate_limit import ControllerRateLimiter
from application.snapshots import BurstGate
from application.workqueue import ShutDown, WorkQueue
from domain import labels
from domain.errors import CCMError
from domain.policies.initialization import needs_registration
from domain.policies.lifecycle import LifecycleAction
from domain.ports import Clock, Metrics, NodeStore
from domain.services import LabelSyncService, LifecycleService, RegistrationService
from domain.services.quiet_pass import QuietPass
from domain.services.registration import Outcome

log = logging.getLogger(__name__)

CLOUD_NODE = "cloud-node"
#: The cloud-node controller's queue in its ``workqueue_*{name=}`` series, as
#: cloud-provider names it (dashboards written for the Go CCM read it); logs say cloud-node.
NODES_QUEUE = "Nodes"
CLOUD_NODE_LIFECYCLE = "cloud-node-lifecycle"
CLOUD_NODE_LABEL_SYNC = "cloud-node-label-sync"
#: The kubelet serving CSR approver (``application.csr_approval``): not the Go CCM's.
CLOUD_NODE_CSR_APPROVAL = "cloud-node-csr-approval"
ALL_CONTROLLERS = (
    CLOUD_NODE,
    CLOUD_NODE_LIFECYCLE,
    CLOUD_NODE_LABEL_SYNC,
    CLOUD_NODE_CSR_APPROVAL,
)
#: Enabled only when named in ``--controllers``, never by ``*`` (Kubernetes'
#: ``ControllersDisabledByDefault``): approving certificates is the operator's call.
DISABLED_BY_DEFAULT = frozenset({CLOUD_NODE_CSR_APPROVAL})
#: What ``*`` (the default) runs: the Go CCM's three.
DEFAULT_CONTROLLERS = tuple(c for c in ALL_CONTROLLERS if c not in DISABLED_BY_DEFAULT)
#: Every ``node_synced`` result each controller reports.
SYNC_RESULTS = {
    CLOUD_NODE: (*(o.value for o in Outcome), "error"),
    CLOUD_NODE_LIFECYCLE: tuple(a.value for a in LifecycleAction),
    CLOUD_NODE_LABEL_SYNC: ("updated", "unchanged", "error"),
}
#: How often the cloud-node controller counts the nodes still waiting for it.
WAITING_REPORT_PERIOD = 10.0

Handler = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """client-go's defaults: 5 ms doubling to 1000 s per item, 10 qps / burst 100 overall."""

    base_delay: float = 0.005
    max_delay: float = 1000.0
    qps: float = 10.0
    burst: int = 100


def new_queue(
    name: str,
    clock: Clock,
    metrics: Metrics,
    settings: QueueSettings,
    *,
    metric_name: str | None = None,
) -> WorkQueue:
    limiter = ControllerRateLimiter(
        clock=clock,
        base_delay=settings.base_delay,
        max_delay=settings.max_delay,
        qps=settings.qps,
        burst=settings.burst,
    )
    return WorkQueue(
        name=name, clock=clock, rate_limiter=limiter, metrics=metrics, metric_name=metric_name
    )


async def _worker(queue: WorkQueue, handle: Handler) -> None:
    """Take a key, handle it, then forget it (success) or requeue it with backoff."""
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await handle(key)
        except CCMError as err:
            log.warning("%s: %s: %s (retry %d)", queue.name, key, err, queue.retries(key) + 1)
            await queue.add_rate_limited(key)
        except Exception:
            log.exception(
                "%s: %s: unexpected failure (retry %d)", queue.name, key, queue.retries(key) + 1
            )
            await queue.add_rate_limited(key)
        else:
            queue.forget(key)
        finally:
            await queue.done(key)  # the queue times the work (taken -> done)


async def run_workers(queue: WorkQueue, handle: Handler, *, workers: int) -> None:
    """``workers`` concurrent workers on one queue; the queue is shut down on exit."""
    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(workers):
                tg.create_task(_worker(queue, handle), name=f"{queue.name}-worker-{i}")
    finally:
        await queue.shutdown()


class CloudNodeController:
    """Initializes nodes that carry the uninitialized taint; syncs addresses.

    Every watched add/update enqueues the node; ``workers`` take from the
    queue; a periodic loop refreshes addresses every ``address_sync_period``.
    Nodes that join in a burst (:class:`~application.snapshots.BurstGate`) may
    share one XO snapshot; a retry, or a node an XO change just poked, never
    starts from one.
    """

    name = CLOUD_NODE

    def __init__(
        self,
        *,
        service: RegistrationService,
        nodes: NodeStore,
        clock: Clock,
        metrics: Metrics,
        workers: int = 1,
        address_sync_period: float = 300.0,
        address_workers: int = 1,
        queue_settings: QueueSettings = QueueSettings(),
    ) -> None:
        self._service = service
        self._nodes = nodes
        self._clock = clock
        self._metrics = metrics
        self._workers = workers
        self._period = address_sync_period
        self._address_workers = address_workers
        self.queue = new_queue(CLOUD_NODE, clock, metrics, queue_settings, metric_name=NODES_QUEUE)
        self._bursting = BurstGate(clock=clock, depth=lambda: len(self.queue))
        #: nodes an XO change poked: their next sync asks XO, never a shared snapshot
        self._poked: set[str] = set()
        #: what a node initialized from a host or pool that changed meanwhile needs
        #: (label sync, when enabled: ``EnabledControllers`` sets it)
        self.labels_overtaken: Callable[[str], Awaitable[None]] | None = None
        self._waiting_counts: QuietPass[tuple[int, datetime | None, int]] = QuietPass()
        metrics.declare_node_syncs(controller=CLOUD_NODE, results=SYNC_RESULTS[CLOUD_NODE])

    async def trigger(self, name: str) -> None:
        """Sync this node now (e.g. the VM it waits for just appeared)."""
        self._poked.add(name)
        await self.queue.add(name)

    async def _handle(self, name: str) -> None:
        fresh = name in self._poked or self.queue.retries(name) > 0
        self._poked.discard(name)
        try:
            result = await self._service.sync(name=name, burst=not fresh and self._bursting())
        except CCMError:
            self._metrics.node_synced(controller=CLOUD_NODE, result="error")
            raise
        self._metrics.node_synced(controller=CLOUD_NODE, result=result.outcome.value)
        if result.outcome is Outcome.INITIALIZED:
            if result.taint_removal_delay is not None:
                self._metrics.taint_removal_delay(seconds=result.taint_removal_delay)
            if result.initial_sync_delay is not None:
                self._metrics.initial_sync_delay(seconds=result.initial_sync_delay)
        if result.labels_overtaken and self.labels_overtaken is not None:
            await self.labels_overtaken(name)

    async def _watch(self) -> None:
        async for node in self._nodes.watch():
            if needs_registration(node):
                await self.queue.add(node.name)

    async def _sync_addresses(self) -> object:
        return await self._service.sync_addresses(workers=self._address_workers)

    async def report_waiting(self) -> None:
        """Count the nodes still carrying the uninitialized taint (and the oldest one),
        and those that will never get it nor a providerID."""
        all_nodes = await self._nodes.list()
        counts = self._waiting_counts.derived_from(all_nodes)  # the same nodes: the same counts
        if counts is None:
            waiting_since: list[datetime] = []
            waiting = without_provider_id = 0
            for node in all_nodes:
                if node.has_taint(labels.UNINITIALIZED_TAINT_KEY):
                    waiting += 1
                    if node.created_at is not None:
                        waiting_since.append(node.created_at)
                elif not node.provider_id:
                    without_provider_id += 1
            counts = (waiting, min(waiting_since, default=None), without_provider_id)
            self._waiting_counts.remember(all_nodes, counts)
        self._metrics.nodes_waiting_initialization(count=counts[0], oldest_created_at=counts[1])
        self._metrics.nodes_without_provider_id(count=counts[2])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(), name="cloud-node-watch")
            tg.create_task(
                run_workers(
                    self.queue,
                    self._handle,
                    workers=self._workers,
                ),
                name="cloud-node-workers",
            )
            tg.create_task(
                run_every(
                    self._clock,
                    self._period,
                    self._sync_addresses,
                    name="address-sync",
                    aligned=True,
                ),
                name="cloud-node-address-sync",
            )
            tg.create_task(
                run_every(
                    self._clock, WAITING_REPORT_PERIOD, self.report_waiting, name="waiting-nodes"
                ),
                name="cloud-node-waiting-report",
            )


class CloudNodeLifecycleController:
    """Every ``period``: delete nodes whose VM is gone, taint those shut down.

    ``trigger`` checks one node at once (its VM was removed in XO); the
    queue de-duplicates a burst of removals into one check per node.
    """

    name = CLOUD_NODE_LIFECYCLE

    def __init__(
        self,
        *,
        service: LifecycleService,
        clock: Clock,
        metrics: Metrics,
        period: float = 5.0,
        queue_settings: QueueSettings = QueueSettings(),
    ) -> None:
        self._service = service
        self._clock = clock
        self._metrics = metrics
        self._period = period
        self.queue = new_queue(CLOUD_NODE_LIFECYCLE, clock, metrics, queue_settings)
        metrics.declare_node_syncs(
            controller=CLOUD_NODE_LIFECYCLE, results=SYNC_RESULTS[CLOUD_NODE_LIFECYCLE]
        )

    async def trigger(self, name: str) -> None:
        await self.queue.add(name)

    async def _pass(self) -> None:
        result = await self._service.run_pass()
        for action, count in result.actions.items():
            for _ in range(count):
                self._metrics.node_synced(controller=CLOUD_NODE_LIFECYCLE, result=action.value)
        for name, delay in result.rechecks.items():
            await self.queue.add_after(name, delay)

    async def _handle(self, name: str) -> None:
        result = await self._service.check_by_name(name=name)
        self._metrics.node_synced(controller=CLOUD_NODE_LIFECYCLE, result=result.action.value)
        if result.recheck_after is not None:
            # Confirm the deletion as soon as the guard allows, not at the next pass.
            await self.queue.add_after(name, result.recheck_after)

    async def run(self) -> None:
        await self._service.start()  # this replica leads now: read the breaker's state
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                run_every(self._clock, self._period, self._pass, name=CLOUD_NODE_LIFECYCLE)
            )
            tg.create_task(run_workers(self.queue, self._handle, workers=1))


class CloudNodeLabelSyncController:
    """Every ``period``: labels follow the VMs; ``trigger`` syncs one node at once."""

    name = CLOUD_NODE_LABEL_SYNC

    def __init__(
        self,
        *,
        service: LabelSyncService,
        clock: Clock,
        metrics: Metrics,
        period: float = 300.0,
        queue_settings: QueueSettings = QueueSettings(),
    ) -> None:
        self._service = service
        self._clock = clock
        self._metrics = metrics
        self._period = period
        self.queue = new_queue(CLOUD_NODE_LABEL_SYNC, clock, metrics, queue_settings)
        metrics.declare_node_syncs(
            controller=CLOUD_NODE_LABEL_SYNC, results=SYNC_RESULTS[CLOUD_NODE_LABEL_SYNC]
        )
        self._full_pass_requested = asyncio.Event()

    async def trigger(self, name: str) -> None:
        await self.queue.add(name)

    def request_full_pass(self) -> None:
        """Re-sync every node soon (the XO change stream reconnected)."""
        self._full_pass_requested.set()

    async def _pass(self) -> None:
        result = await self._service.run_pass()
        for outcome, count in (("updated", result.updated), ("error", result.failed)):
            for _ in range(count):
                self._metrics.node_synced(controller=CLOUD_NODE_LABEL_SYNC, result=outcome)

    async def _handle(self, name: str) -> None:
        changed = await self._service.sync_node(name=name)
        self._metrics.node_synced(
            controller=CLOUD_NODE_LABEL_SYNC, result="updated" if changed else "unchanged"
        )

    async def _on_request(self) -> None:
        while True:
            await self._full_pass_requested.wait()
            self._full_pass_requested.clear()
            try:
                await self._pass()
            except Exception:
                log.exception("label sync pass after resync failed")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                run_every(
                    self._clock, self._period, self._pass, name=CLOUD_NODE_LABEL_SYNC, aligned=True
                )
            )
            tg.create_task(self._on_request())
            tg.create_task(run_workers(self.queue, self._handle, workers=1))


@dataclass(frozen=True, slots=True)
class EnabledControllers:
    """The three controllers and the names ``--controllers`` enables; implements the
    change router's ``Pokes`` by poking only the enabled ones."""

    enabled: Sequence[str]
    cloud_node: CloudNodeController
    lifecycle: CloudNodeLifecycleController
    label_sync: CloudNodeLabelSyncController
    #: the kubelet serving CSR approver: None unless enabled (it is built only then)
    csr_approval: Runnable | None = None

    def __post_init__(self) -> None:
        # A node initialized while its host or pool changed is label sync's to follow.
        self.cloud_node.labels_overtaken = self.vm_changed

    def on(self, name: str) -> bool:
        return name in self.enabled

    async def vm_changed(self, name: str) -> None:
        if self.on(CLOUD_NODE_LABEL_SYNC):
            await self.label_sync.trigger(name)

    async def vm_removed(self, name: str) -> None:
        if self.on(CLOUD_NODE_LIFECYCLE):
            await self.lifecycle.trigger(name)

    async def vm_appeared(self, name: str) -> None:
        if self.on(CLOUD_NODE):
            await self.cloud_node.trigger(name)

    def resynced(self) -> None:
        if self.on(CLOUD_NODE_LABEL_SYNC):
            self.label_sync.request_full_pass()
