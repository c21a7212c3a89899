"""Label sync: the ``cloud-node-label-sync`` controller's work."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from domain import labels
from domain.errors import CCMError, OvertakenError, ProviderIDError
from domain.freshness import Freshness, FreshSnapshots, Observation
from domain.matching import vm_id_candidates
from domain.model import VM, Host, Node, NodeChange, NodeEventSpec, Pool
from domain.options import CCMOptions
from domain.policies.label_sync import LabelSyncPlan, plan_label_sync
from domain.policies.metadata import (
    instance_metadata,
    invalid_tag_warnings,
    topology_tag_warnings,
)
from domain.ports import EventRecorder, Inventory, NodeStore, Snapshots
from domain.providerid import is_ours
from domain.services.node_updates import apply_plan, placement_of, placement_overtaken, say
from domain.services.quiet_pass import QuietPass

log = logging.getLogger(__name__)

SOURCE = "cloud-node-label-sync-controller"
#: Reads of one VM before a sync overtaken by newer answers each time is requeued.
FRESH_READS = 3


@dataclass(frozen=True, slots=True)
class LabelSyncResult:
    updated: int
    failed: int


def _vm_id(node: Node) -> str | None:
    """The VM id of an initialized node of ours, else None (not label-synced)."""
    if node.has_taint(labels.UNINITIALIZED_TAINT_KEY) or not is_ours(node.provider_id):
        return None
    try:
        (vm_id,) = vm_id_candidates(node)
    except ProviderIDError as err:
        log.warning("node %s: %s", node.name, err)
        return None
    return vm_id


class _Outcome(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    OVERTAKEN = "overtaken"  # a newer answer was applied or announced: read again


@dataclass(frozen=True, slots=True)
class _Planned:
    change: NodeChange
    plan: LabelSyncPlan | None = None
    overtaken: bool = False
    #: the VM's tags that could not be used (said with a write)
    tag_warnings: tuple[NodeEventSpec, ...] = ()
    #: host or pool tags the topology sources could not use (said at every plan)
    topology_warnings: tuple[NodeEventSpec, ...] = ()


class LabelSyncService:
    """Keeps topology, instance-type and XO labels in step with each VM.

    Every write is computed from an XO answer the freshness ledger admits
    (``domain.freshness``): the pass's snapshot for VMs that did not change since it
    started, a lookup by id for the others and for the VMs change events name.
    """

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        events: EventRecorder,
        options: CCMOptions | None = None,
        freshness: Freshness | None = None,
        snapshots: Snapshots | None = None,
    ) -> None:
        self._inventory = inventory
        self._nodes = nodes
        self._events = events
        self._options = options or CCMOptions()
        self._freshness = Freshness() if freshness is None else freshness
        self._snapshots = (
            FreshSnapshots(inventory=inventory, freshness=self._freshness)
            if snapshots is None
            else snapshots
        )
        #: what each node was last found in step with: the very Node value and the
        #: VM, host and pool (equal values): while both stay, nothing is recomputed
        self._settled: dict[str, tuple[Node, VM, Host | None, Pool | None]] = {}
        self._quiet_pass: QuietPass[list[tuple[Node, str]]] = QuietPass()

    def _in_step(self, node: Node, vm: VM, host: Host | None, pool: Pool | None) -> bool:
        last = self._settled.get(node.name)
        return (
            last is not None
            and last[0] is node
            # the very values when XO's lists are unchanged: identity first
            and (last[1] is vm or last[1] == vm)
            and (last[2] is host or last[2] == host)
            and (last[3] is pool or last[3] == pool)
        )

    async def run_pass(self) -> LabelSyncResult:
        """Sync every initialized node from one inventory snapshot (O(1) XO requests,
        plus one per VM that changed while the snapshot was taken).

        A node unchanged since a pass found it in step with an unchanged VM, host
        and pool is skipped without planning: at rest a pass costs a comparison per node.
        """
        nodes = await self._nodes.list()
        targets = self._quiet_pass.derived_from(nodes)
        if targets is None:
            targets = []
            for node in nodes:
                last = self._settled.get(node.name)
                vm_id = last[1].id if last is not None and last[0] is node else _vm_id(node)
                if vm_id:
                    targets.append((node, vm_id))
        if not targets:
            return LabelSyncResult(0, 0)
        observed = await self._snapshots.take()
        snap = observed.snapshot
        if self._quiet_pass.same_sources(snap.vms, snap.hosts, snap.pools):
            return LabelSyncResult(0, 0)  # the last pass's very inputs: its same nothing
        updated = failed = 0
        settled: dict[str, tuple[Node, VM, Host | None, Pool | None]] = {}
        overtaken: list[str] = []
        followed: list[str] = []
        for node, vm_id in targets:
            vm = snap.vms.get(vm_id)
            if vm is None:
                continue  # gone or unreachable: the lifecycle controller's business
            host = snap.hosts.get(vm.container)
            pool = snap.pools.get(vm.pool_id)
            if self._in_step(node, vm, host, pool):
                settled[node.name] = (node, vm, host, pool)  # this snapshot's: one set kept
                continue
            try:
                outcome = await self._apply(node, vm, host, pool, observed.observation)
            except CCMError as err:
                failed += 1
                log.warning("node %s: label sync failed: %s", node.name, err)
                continue
            if outcome is _Outcome.OVERTAKEN:
                overtaken.append(node.name)
            elif outcome is _Outcome.WRITTEN:
                updated += 1
                if await placement_overtaken(self._inventory, host, pool):
                    followed.append(node.name)  # the snapshot's host or pool changed since
            else:
                settled[node.name] = (node, vm, host, pool)
        written, errors = await self._sync_again(overtaken)
        _, again = await self._sync_again(followed)  # written above already: not counted
        updated, failed = updated + written, failed + errors + again
        self._settled = settled
        if updated or failed or overtaken or followed:
            self._quiet_pass.forget()
        else:
            self._quiet_pass.remember(nodes, targets, snap.vms, snap.hosts, snap.pools)
        return LabelSyncResult(updated, failed)

    async def _sync_again(self, names: list[str]) -> tuple[int, int]:
        """Sync each node from XO's answer now: how many were written, how many failed."""
        written = failed = 0
        for name in names:
            try:
                written += await self.sync_node(name=name)
            except CCMError as err:
                failed += 1
                log.warning("node %s: label sync failed: %s", name, err)
        return written, failed

    async def sync_node(self, *, name: str) -> bool:
        """Sync one node now from its VM as XO says it is now (the VM changed); True
        when labels were written. OvertakenError when newer answers kept arriving."""
        wrote = False
        for _ in range(FRESH_READS):
            node = await self._nodes.get(name=name)
            vm_id = _vm_id(node) if node else None
            if node is None or vm_id is None:
                return wrote
            # The event that poked this node carried the VM, but its moment cannot be
            # ordered against an answer already applied (XO emitted it at some point
            # before it arrived): XO is asked now, which the freshness rule can order.
            vm, seen = await self._freshness.observe(partial(self._inventory.get_vm, vm_id=vm_id))
            if vm is None:
                return wrote  # gone or unreachable: the lifecycle controller's business
            host, pool = await placement_of(self._inventory, vm)
            outcome = await self._apply(node, vm, host, pool, seen)
            if outcome is _Outcome.WRITTEN:
                wrote = True
                if not await placement_overtaken(self._inventory, host, pool):
                    return True
            elif outcome is _Outcome.UNCHANGED:
                return wrote
        raise OvertakenError(f"node {name}: XO's answers kept changing while syncing labels")

    def _plan(
        self,
        current: Node,
        *,
        vm: VM,
        host: Host | None,
        pool: Pool | None,
        seen: Observation,
    ) -> _Planned:
        if not self._freshness.admit(vm.id, seen):
            return _Planned(NodeChange(), overtaken=True)
        metadata = instance_metadata(
            vm=vm, host=host, pool=pool, node=current, options=self._options
        )
        plan = plan_label_sync(
            node=current,
            metadata=metadata,
            sync_taints=self._options.tags.sync_taints,
            topology=self._options.topology,
        )
        return _Planned(
            plan.change,
            plan,
            tag_warnings=invalid_tag_warnings(metadata),
            topology_warnings=topology_tag_warnings(metadata),
        )

    async def _apply(
        self, node: Node, vm: VM, host: Host | None, pool: Pool | None, seen: Observation
    ) -> _Outcome:
        written, planned = await apply_plan(
            self._nodes, node, partial(self._plan, vm=vm, host=host, pool=pool, seen=seen)
        )
        if planned.overtaken:
            return _Outcome.OVERTAKEN
        # Said each time the node is planned: only when it, its VM, host or pool
        # changed since it was last found in step (the recorder folds repeats).
        await say(self._events, written, planned.topology_warnings, source=SOURCE)
        if planned.change.empty or planned.plan is None:
            return _Outcome.UNCHANGED
        log.info("node %s: labels updated %s", node.name, dict(planned.change.set_labels))
        await say(self._events, written, planned.plan.events, source=SOURCE)
        # Said when the labels move, as registration says it: a tag changed to a
        # value that cannot be used (an instance type falling back) is explained.
        await say(self._events, written, planned.tag_warnings, source=SOURCE)
        return _Outcome.WRITTEN
