"""Node registration: the ``cloud-node`` controller's work on one Node."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain import labels
from domain.errors import CCMError, ProviderIDError
from domain.matching import VMIndex, locate_in_snapshot, locate_vm, vm_id_candidates
from domain.model import VM, EventType, Host, Node, NodeAddress, NodeChange, Pool
from domain.options import CCMOptions
from domain.policies.addresses import node_addresses, provided_node_ips
from domain.policies.initialization import plan_beta_to_ga, plan_initialization
from domain.policies.metadata import instance_metadata
from domain.ports import Clock, EventRecorder, Inventory, NodeStore
from domain.providerid import is_ours
from domain.services.node_updates import update_on_conflict_retry
from domain.services.quiet_pass import QuietPass

log = logging.getLogger(__name__)

SOURCE = "cloud-node-controller"

#: Where a burst of joining nodes finds their VMs: a shared snapshot's index, or None.
SharedIndex = Callable[[], Awaitable[VMIndex | None]]


class RetryLater(CCMError):
    """The node cannot be initialized yet; the controller requeues it with backoff."""


class Outcome(StrEnum):
    INITIALIZED = "initialized"
    RECONCILED = "reconciled"  # an initialized node's beta labels copied to GA
    UNCHANGED = "unchanged"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    outcome: Outcome
    #: seconds from the node's creation to the taint's removal, when known
    taint_removal_delay: float | None = None


@dataclass(frozen=True, slots=True)
class AddressSyncResult:
    patched: int
    failed: int


class RegistrationService:
    """Initializes tainted Nodes from their VMs and keeps their addresses current."""

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        events: EventRecorder,
        clock: Clock,
        options: CCMOptions | None = None,
    ) -> None:
        self._inventory = inventory
        self._nodes = nodes
        self._events = events
        self._clock = clock
        self._options = options or CCMOptions()
        #: each node's value and VM when an address pass last found them in step
        self._addressed: dict[str, tuple[Node, VM]] = {}
        self._quiet_addresses: QuietPass[list[tuple[Node, str]]] = QuietPass()

    async def sync(self, *, name: str, shared: SharedIndex | None = None) -> RegistrationResult:
        """Initialize or reconcile one node by name.

        ``shared`` (nodes joining in a burst) may answer the VM lookup from a
        snapshot taken for the whole burst; what it cannot answer is asked of XO.
        Raises RetryLater or any CCMError when the node must be retried later.
        """
        node = await self._nodes.get(name=name)
        if node is None:
            return RegistrationResult(Outcome.GONE)
        if node.has_taint(labels.UNINITIALIZED_TAINT_KEY):
            return await self._initialize(node, shared)
        _, change = await update_on_conflict_retry(self._nodes, node, plan_beta_to_ga)
        return RegistrationResult(Outcome.UNCHANGED if change.empty else Outcome.RECONCILED)

    async def _locate(
        self, node: Node, shared: SharedIndex | None
    ) -> tuple[VM, Host | None, Pool | None]:
        """The node's VM, host and pool: from the burst's snapshot when it has the VM
        with an address (one without may have just booted: XO is asked), else from XO."""
        index = await shared() if shared is not None else None
        found = locate_in_snapshot(node, index, match_by_name=False).vm if index else None
        if found is not None and (found.addresses or found.main_ip_address):
            vm = found
        else:
            index = None
            vm = await locate_vm(self._inventory, node, match_by_name=self._options.match_by_name)
        host = pool = None
        if vm.container:
            # A halted VM's container is its pool: the snapshot knows that, XO needs no asking.
            host = index.host(vm.container) if index else None
            if host is None and not (index and index.pool(vm.container)):
                host = await self._inventory.get_host(host_id=vm.container)
        if vm.pool_id:
            pool = index.pool(vm.pool_id) if index else None
            pool = pool or await self._inventory.get_pool(pool_id=vm.pool_id)
        return vm, host, pool

    async def _initialize(self, node: Node, shared: SharedIndex | None) -> RegistrationResult:
        if node.provider_id and not is_ours(node.provider_id):
            # Not ours: no metadata, but the taint must still go (as the
            # Kubernetes cloud-node controller does for foreign instances).
            log.info(
                "node %s has foreign providerID %s: removing the taint only",
                node.name,
                node.provider_id,
            )
            written, _ = await update_on_conflict_retry(
                self._nodes,
                node,
                lambda _n: NodeChange(
                    remove_taint_keys=frozenset({labels.UNINITIALIZED_TAINT_KEY})
                ),
            )
            return await self._done(written)

        vm, host, pool = await self._locate(node, shared)
        wait: list[str] = []
        addresses: tuple[NodeAddress, ...] = ()
        invalid_tags: tuple[tuple[str, str], ...] = ()

        def plan(current: Node) -> NodeChange:
            nonlocal addresses, invalid_tags
            if not current.has_taint(labels.UNINITIALIZED_TAINT_KEY):
                return NodeChange()  # someone else initialized it meanwhile
            metadata = instance_metadata(
                vm=vm, host=host, pool=pool, node=current, options=self._options
            )
            invalid_tags = metadata.invalid_tags
            init = plan_initialization(node=current, metadata=metadata)
            if init.wait_reason:
                wait.append(init.wait_reason)
                return NodeChange()
            addresses = init.addresses
            return init.change

        written, change = await update_on_conflict_retry(self._nodes, node, plan)
        if wait:
            await self._events.record(
                node=node,
                type=EventType.WARNING,
                reason="ProvidedNodeIPMismatch",
                message=f"Waiting to initialize: {wait[-1]}",
                source=SOURCE,
            )
            raise RetryLater(f"node {node.name}: {wait[-1]}")
        for tag, why in invalid_tags:
            await self._events.record(
                node=written,
                type=EventType.WARNING,
                reason="InvalidVMTag",
                message=f"VM tag {tag!r} ignored: {why}",
                source=SOURCE,
            )
        if change.empty:
            return RegistrationResult(Outcome.UNCHANGED)
        if addresses and tuple(written.addresses) != addresses:
            written = await self._nodes.set_addresses(node=written, addresses=addresses)
        return await self._done(written)

    async def _done(self, node: Node) -> RegistrationResult:
        await self._events.record(
            node=node,
            type=EventType.NORMAL,
            reason="Synced",
            message="Node synced successfully",
            source=SOURCE,
        )
        delay = None
        if node.created_at is not None:
            delay = max(0.0, (self._clock.now() - node.created_at).total_seconds())
        log.info("node %s initialized (providerID %s)", node.name, node.provider_id or "-")
        return RegistrationResult(Outcome.INITIALIZED, taint_removal_delay=delay)

    def _address_candidates(self, nodes: Sequence[Node]) -> list[tuple[Node, str]]:
        """Each initialized node of ours with the id of its VM."""
        candidates = []
        for node in nodes:
            last = self._addressed.get(node.name)
            if last is not None and last[0] is node:
                candidates.append((node, last[1].id))  # in step last pass: same VM id
                continue
            if node.has_taint(labels.UNINITIALIZED_TAINT_KEY) or not is_ours(node.provider_id):
                continue
            try:
                (vm_id,) = vm_id_candidates(node)
            except ProviderIDError as err:
                log.warning("node %s: %s", node.name, err)
                continue
            candidates.append((node, vm_id))
        return candidates

    async def sync_addresses(self, *, workers: int = 1) -> AddressSyncResult:
        """Refresh ``status.addresses`` of every initialized node of ours.

        One inventory snapshot for the whole pass; a node whose VM is absent
        or whose result is empty is skipped, and so is one unchanged (the same
        Node value, an equal VM) since a pass found it in step; only differences are written, by
        up to ``workers`` concurrent patches (``--concurrent-node-status-updates``);
        errors are logged, never retried here (the next pass retries).
        """
        nodes = await self._nodes.list()
        candidates = self._quiet_addresses.derived_from(nodes)
        if candidates is None:
            candidates = self._address_candidates(nodes)
        if not candidates:
            return AddressSyncResult(0, 0)
        snapshot = await self._inventory.snapshot()
        if self._quiet_addresses.same_sources(snapshot.vms):
            return AddressSyncResult(0, 0)  # the last pass's very inputs: its same nothing
        changes = []
        settled: dict[str, tuple[Node, VM]] = {}
        for node, vm_id in candidates:
            vm = snapshot.vms.get(vm_id)
            if vm is None:
                continue
            last = self._addressed.get(node.name)
            if last is not None and last[0] is node and (last[1] is vm or last[1] == vm):
                settled[node.name] = (node, vm)  # unchanged on both sides: nothing to compute
                continue
            addresses = node_addresses(
                vm=vm,
                node_name=node.name,
                provided_ips=provided_node_ips(node.annotations),
                options=self._options.addresses,
            )
            if not addresses or tuple(node.addresses) == addresses:
                settled[node.name] = (node, vm)
                continue
            changes.append((node, addresses))
        self._addressed = settled
        if changes:
            self._quiet_addresses.forget()
        else:
            self._quiet_addresses.remember(nodes, candidates, snapshot.vms)
        outcomes: list[bool] = []
        slots = asyncio.Semaphore(max(1, workers))

        async def patch(node: Node, addresses: tuple[NodeAddress, ...]) -> None:
            async with slots:
                try:
                    await self._nodes.set_addresses(node=node, addresses=addresses)
                    outcomes.append(True)
                except CCMError as err:
                    outcomes.append(False)
                    log.warning("node %s: address update failed: %s", node.name, err)

        await asyncio.gather(*(patch(node, addresses) for node, addresses in changes))
        return AddressSyncResult(outcomes.count(True), outcomes.count(False))
