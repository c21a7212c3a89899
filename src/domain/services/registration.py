"""Node registration: the ``cloud-node`` controller's work on one Node."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial

from domain import labels
from domain.errors import CCMError, ProvidedNodeIPMismatchError, ProviderIDError, RetryLater
from domain.freshness import Freshness, FreshSnapshots, Observation
from domain.matching import locate_in_snapshot, locate_vm, vm_id_candidates
from domain.model import (
    VM,
    EventType,
    Host,
    Node,
    NodeAddress,
    NodeChange,
    NodeEventSpec,
    Pool,
)
from domain.options import CCMOptions
from domain.policies.addresses import node_addresses, provided_node_ips
from domain.policies.initialization import plan_beta_to_ga, plan_initialization
from domain.policies.metadata import (
    instance_metadata,
    invalid_tag_warnings,
    topology_tag_warnings,
)
from domain.policies.waiting import waiting_reason
from domain.ports import Clock, EventRecorder, Inventory, NodeStore, Snapshots
from domain.providerid import is_ours
from domain.services.node_updates import (
    apply_plan,
    placement_of,
    placement_overtaken,
    say,
    update_on_conflict_retry,
)
from domain.services.quiet_pass import QuietPass

log = logging.getLogger(__name__)

SOURCE = "cloud-node-controller"

#: Reads of one node's VM before an initialization overtaken by newer answers each
#: time is given back to the queue.
FRESH_READS = 3


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
    #: seconds from the node's creation to the end of its initialization (addresses
    #: written, event recorded), when known
    initial_sync_delay: float | None = None
    #: the host or pool its labels came from changed while they were written: its
    #: labels are to be synced again (label sync's business)
    labels_overtaken: bool = False


@dataclass(frozen=True, slots=True)
class AddressSyncResult:
    patched: int
    failed: int


@dataclass(frozen=True, slots=True)
class Located:
    """A node's VM with its host and pool, and when XO said so."""

    vm: VM
    host: Host | None
    pool: Pool | None
    seen: Observation


@dataclass(frozen=True, slots=True)
class _InitPlan:
    """What one attempt at initializing decided (``change`` empty: nothing to write)."""

    change: NodeChange
    addresses: tuple[NodeAddress, ...] = ()
    wait_reason: str = ""
    #: the VM's tags, and the host or pool tags, that could not be used
    warnings: tuple[NodeEventSpec, ...] = ()
    #: the answer was overtaken by a newer one (``domain.freshness``): read again
    stale: bool = False


class RegistrationService:
    """Initializes tainted Nodes from their VMs and keeps their addresses current.

    Every write is computed from an XO answer the freshness ledger admits
    (``domain.freshness``); ``snapshots`` serve the address pass and
    ``burst_snapshots`` the nodes that join in a burst.
    """

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        events: EventRecorder,
        clock: Clock,
        options: CCMOptions | None = None,
        freshness: Freshness | None = None,
        snapshots: Snapshots | None = None,
        burst_snapshots: Snapshots | None = None,
    ) -> None:
        self._inventory = inventory
        self._nodes = nodes
        self._events = events
        self._clock = clock
        self._options = options or CCMOptions()
        self._freshness = Freshness(clock) if freshness is None else freshness
        self._snapshots = (
            FreshSnapshots(inventory=inventory, freshness=self._freshness)
            if snapshots is None
            else snapshots
        )
        self._burst = self._snapshots if burst_snapshots is None else burst_snapshots
        #: each node's value and VM when an address pass last found them in step
        self._addressed: dict[str, tuple[Node, VM]] = {}
        self._quiet_addresses: QuietPass[list[tuple[Node, str]]] = QuietPass()
        #: one address write per node at a time: status writes carry no resourceVersion
        self._address_locks: dict[str, asyncio.Lock] = {}

    async def sync(self, *, name: str, burst: bool = False) -> RegistrationResult:
        """Initialize or reconcile one node by name.

        ``burst`` (nodes joining together) lets a snapshot shared by the burst
        answer the VM lookup; what it cannot answer, or answers with an age the
        freshness rule refuses, is asked of XO.
        Raises RetryLater or any CCMError when the node must be retried later; a
        tainted node is then told why in one Warning event
        (``domain.policies.waiting``), once per call.
        """
        node = await self._nodes.get(name=name)
        if node is None:
            return RegistrationResult(Outcome.GONE)
        if node.has_taint(labels.UNINITIALIZED_TAINT_KEY):
            return await self._initialize(node, burst)
        _, change = await update_on_conflict_retry(self._nodes, node, plan_beta_to_ga)
        return RegistrationResult(Outcome.UNCHANGED if change.empty else Outcome.RECONCILED)

    async def _from_burst(self, node: Node) -> Located | None:
        """The node's VM, host and pool from the burst's snapshot, when it has the VM
        with an address (one without may have just booted: XO is asked) and the
        answer is fresh enough for it."""
        try:
            observed = await self._burst.take()
        except CCMError as err:
            log.warning("burst snapshot failed, looking node %s up by id: %s", node.name, err)
            return None
        index = observed.index
        vm = locate_in_snapshot(node, index, match_by_name=False).vm
        if vm is None or not (vm.addresses or vm.main_ip_address):
            return None
        if not self._freshness.admits(vm.id, observed.observation):
            return None
        host = index.host(vm.container) if vm.container else None
        if host is None and vm.container and not index.pool(vm.container):
            # A halted VM's container is its pool: the snapshot knows that, XO needs no asking.
            host = await self._inventory.get_host(host_id=vm.container)
        pool = (
            (index.pool(vm.pool_id) or await self._inventory.get_pool(pool_id=vm.pool_id))
            if (vm.pool_id)
            else None
        )
        return Located(vm, host, pool, observed.observation)

    async def _from_xo(self, node: Node) -> Located:
        """The node's VM asked of XO now, with its host and pool."""
        vm, seen = await self._freshness.observe(
            lambda: locate_vm(self._inventory, node, match_by_name=self._options.match_by_name)
        )
        host, pool = await placement_of(self._inventory, vm)
        return Located(vm, host, pool, seen)

    async def _initialize(self, node: Node, burst: bool) -> RegistrationResult:
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
            return await self._done(written, self._age(written))
        try:
            return await self._initialize_ours(node, burst)
        except CCMError as err:
            await self._explain_waiting(node, err)
            raise

    async def _explain_waiting(self, node: Node, err: CCMError) -> None:
        """One Warning on the Node naming why this attempt left it waiting (each attempt
        is one backoff step of the queue); nothing when the cause is not the node's."""
        why = waiting_reason(node, err)
        if why is not None:
            await self._events.record(
                node=node,
                type=EventType.WARNING,
                reason=why.reason,
                message=why.message,
                source=SOURCE,
            )

    async def _initialize_ours(self, node: Node, burst: bool) -> RegistrationResult:
        for attempt in range(FRESH_READS):
            located = (await self._from_burst(node) if burst and attempt == 0 else None) or (
                await self._from_xo(node)
            )
            written, planned = await apply_plan(
                self._nodes, node, partial(self._plan_initialization, located=located)
            )
            if not planned.stale:
                break
            log.debug("node %s: XO's answer was overtaken by a newer one; asking again", node.name)
            node = written
        else:
            raise RetryLater(f"node {node.name}: XO's answers kept changing while initializing")
        if planned.wait_reason:
            raise ProvidedNodeIPMismatchError(node.name, planned.wait_reason)
        if planned.warnings:  # every registration passes here: no call for nothing to say
            await say(self._events, written, planned.warnings, source=SOURCE)
        if planned.change.empty:
            return RegistrationResult(Outcome.UNCHANGED)
        untainted = self._age(written)
        if planned.addresses:
            written = await self._settle_addresses(written, located, planned.addresses)
        done = await self._done(written, untainted)
        if await placement_overtaken(self._inventory, located.host, located.pool):
            log.debug("node %s: its host or pool changed while initialized", node.name)
            return replace(done, labels_overtaken=True)
        return done

    async def _settle_addresses(
        self, node: Node, located: Located, addresses: tuple[NodeAddress, ...]
    ) -> Node:
        """Write the just-initialized node's addresses; when XO announced a change of the
        VM meanwhile (the answer they come from is overtaken), from a newer answer: a
        node is never left initialized without its addresses until the next pass."""
        vm_id, seen = located.vm.id, located.seen
        for _ in range(FRESH_READS):
            if not addresses or tuple(node.addresses) == addresses:
                return node
            written = await self._write_addresses(node, addresses, vm_id, seen)
            if written is not None:
                return written
            vm, seen = await self._freshness.observe(partial(self._inventory.get_vm, vm_id=vm_id))
            if vm is None:
                return node
            addresses = self._addresses_of(node, vm)
        log.warning(
            "node %s: XO's answers kept changing; its addresses wait for the next address pass",
            node.name,
        )
        return node

    def _plan_initialization(self, current: Node, *, located: Located) -> _InitPlan:
        if not current.has_taint(labels.UNINITIALIZED_TAINT_KEY):
            return _InitPlan(NodeChange())  # someone else initialized it meanwhile
        if not self._freshness.admit(located.vm.id, located.seen):
            return _InitPlan(NodeChange(), stale=True)
        metadata = instance_metadata(
            vm=located.vm,
            host=located.host,
            pool=located.pool,
            node=current,
            options=self._options,
        )
        init = plan_initialization(node=current, metadata=metadata)
        if init.wait_reason:
            return _InitPlan(NodeChange(), wait_reason=init.wait_reason)
        return _InitPlan(
            init.change,
            init.addresses,
            warnings=(*invalid_tag_warnings(metadata), *topology_tag_warnings(metadata)),
        )

    async def _write_addresses(
        self, node: Node, addresses: tuple[NodeAddress, ...], vm_id: str, seen: Observation
    ) -> Node | None:
        """Write ``addresses`` computed from ``seen``, unless a newer answer was applied
        meanwhile (None then: that answer's writer has the last word)."""
        lock = self._address_locks.setdefault(node.name, asyncio.Lock())
        try:
            async with lock:
                if not self._freshness.admit(vm_id, seen):
                    log.debug("node %s: addresses from an overtaken answer not written", node.name)
                    return None
                return await self._nodes.set_addresses(node=node, addresses=addresses)
        finally:
            if not lock.locked() and self._address_locks.get(node.name) is lock:
                del self._address_locks[node.name]

    def _age(self, node: Node) -> float | None:
        """Seconds since the node was created, when known."""
        if node.created_at is None:
            return None
        return max(0.0, (self._clock.now() - node.created_at).total_seconds())

    async def _done(self, node: Node, untainted: float | None) -> RegistrationResult:
        await self._events.record(
            node=node,
            type=EventType.NORMAL,
            reason="Synced",
            message="Node synced successfully",
            source=SOURCE,
        )
        log.info("node %s initialized (providerID %s)", node.name, node.provider_id or "-")
        return RegistrationResult(
            Outcome.INITIALIZED, taint_removal_delay=untainted, initial_sync_delay=self._age(node)
        )

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
        Node value, an equal VM) since a pass found it in step. A VM that changed
        after the snapshot started (the freshness rule refuses the snapshot for it)
        is asked of XO again, alone. Only differences are written, by up to
        ``workers`` concurrent patches (``--concurrent-node-status-updates``);
        errors are logged, never retried here (the next pass retries).
        """
        nodes = await self._nodes.list()
        candidates = self._quiet_addresses.derived_from(nodes)
        if candidates is None:
            candidates = self._address_candidates(nodes)
        if not candidates:
            return AddressSyncResult(0, 0)
        observed = await self._snapshots.take()
        vms = observed.snapshot.vms
        if self._quiet_addresses.same_sources(vms):
            return AddressSyncResult(0, 0)  # the last pass's very inputs: its same nothing
        changes: list[tuple[Node, tuple[NodeAddress, ...], str, Observation]] = []
        overtaken: list[tuple[Node, str]] = []
        settled: dict[str, tuple[Node, VM]] = {}
        for node, vm_id in candidates:
            vm = vms.get(vm_id)
            if vm is None:
                continue
            last = self._addressed.get(node.name)
            if last is not None and last[0] is node and (last[1] is vm or last[1] == vm):
                settled[node.name] = (node, vm)  # unchanged on both sides: nothing to compute
                continue
            if not self._freshness.admits(vm_id, observed.observation):
                overtaken.append((node, vm_id))
                continue
            addresses = self._addresses_of(node, vm)
            if not addresses or tuple(node.addresses) == addresses:
                settled[node.name] = (node, vm)
                continue
            changes.append((node, addresses, vm_id, observed.observation))
        for node, vm_id in overtaken:
            try:
                again, seen = await self._freshness.observe(
                    partial(self._inventory.get_vm, vm_id=vm_id)
                )
            except CCMError as err:
                log.warning("node %s: address sync: %s", node.name, err)
                continue
            if again is None:
                continue
            addresses = self._addresses_of(node, again)
            if addresses and tuple(node.addresses) != addresses:
                changes.append((node, addresses, vm_id, seen))
        self._addressed = settled
        if changes or overtaken:
            self._quiet_addresses.forget()
        else:
            self._quiet_addresses.remember(nodes, candidates, vms)
        outcomes: list[bool] = []
        slots = asyncio.Semaphore(max(1, workers))

        async def patch(
            node: Node, addresses: tuple[NodeAddress, ...], vm_id: str, seen: Observation
        ) -> None:
            async with slots:
                try:
                    if await self._write_addresses(node, addresses, vm_id, seen) is not None:
                        outcomes.append(True)
                except CCMError as err:
                    outcomes.append(False)
                    log.warning("node %s: address update failed: %s", node.name, err)

        await asyncio.gather(*(patch(*change) for change in changes))
        return AddressSyncResult(outcomes.count(True), outcomes.count(False))

    def _addresses_of(self, node: Node, vm: VM) -> tuple[NodeAddress, ...]:
        return node_addresses(
            vm=vm,
            node_name=node.name,
            provided_ips=provided_node_ips(node.annotations),
            options=self._options.addresses,
        )
