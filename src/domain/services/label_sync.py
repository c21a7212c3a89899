"""Label sync: the ``cloud-node-label-sync`` controller's work."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from domain import labels
from domain.errors import CCMError, ProviderIDError, VMNotFoundError
from domain.matching import vm_id_candidates
from domain.model import VM, Host, Node, NodeChange, Pool
from domain.options import CCMOptions
from domain.policies.label_sync import LabelSyncPlan, plan_label_sync
from domain.policies.metadata import instance_metadata
from domain.ports import EventRecorder, Inventory, NodeStore
from domain.providerid import is_ours
from domain.services.node_updates import update_on_conflict_retry
from domain.services.quiet_pass import QuietPass

log = logging.getLogger(__name__)

SOURCE = "cloud-node-label-sync-controller"


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


class LabelSyncService:
    """Keeps topology, instance-type and XO labels in step with each VM."""

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        events: EventRecorder,
        options: CCMOptions | None = None,
    ) -> None:
        self._inventory = inventory
        self._nodes = nodes
        self._events = events
        self._options = options or CCMOptions()
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
        """Sync every initialized node from one inventory snapshot (O(1) XO requests).

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
        snap = await self._inventory.snapshot()
        if self._quiet_pass.same_sources(snap.vms, snap.hosts, snap.pools):
            return LabelSyncResult(0, 0)  # the last pass's very inputs: its same nothing
        updated = failed = 0
        settled: dict[str, tuple[Node, VM, Host | None, Pool | None]] = {}
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
                changed = await self._apply(node, vm, host, pool)
            except CCMError as err:
                failed += 1
                log.warning("node %s: label sync failed: %s", node.name, err)
                continue
            updated += changed
            if not changed:
                settled[node.name] = (node, vm, host, pool)
        self._settled = settled
        if updated or failed:
            self._quiet_pass.forget()
        else:
            self._quiet_pass.remember(nodes, targets, snap.vms, snap.hosts, snap.pools)
        return LabelSyncResult(updated, failed)

    async def sync_node(self, *, name: str) -> bool:
        """Sync one node now (its VM changed); True when labels were written."""
        node = await self._nodes.get(name=name)
        vm_id = _vm_id(node) if node else None
        if node is None or vm_id is None:
            return False
        try:
            vm = await self._inventory.get_vm(vm_id=vm_id)
        except VMNotFoundError:
            return False
        host = await self._inventory.get_host(host_id=vm.container) if vm.container else None
        pool = await self._inventory.get_pool(pool_id=vm.pool_id) if vm.pool_id else None
        return bool(await self._apply(node, vm, host, pool))

    async def _apply(self, node: Node, vm: VM, host: Host | None, pool: Pool | None) -> int:
        plans: list[LabelSyncPlan] = []

        def plan(current: Node) -> NodeChange:
            metadata = instance_metadata(
                vm=vm, host=host, pool=pool, node=current, options=self._options
            )
            p = plan_label_sync(
                node=current, metadata=metadata, sync_taints=self._options.tags.sync_taints
            )
            plans.append(p)
            return p.change

        written, change = await update_on_conflict_retry(self._nodes, node, plan)
        if change.empty:
            return 0
        log.info("node %s: labels updated %s", node.name, dict(change.set_labels))
        for spec in plans[-1].events:
            await self._events.record(
                node=written,
                type=spec.type,
                reason=spec.reason,
                message=spec.message,
                source=SOURCE,
            )
        return 1
