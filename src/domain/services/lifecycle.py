"""Node lifecycle: the ``cloud-node-lifecycle`` controller's pass over all Nodes."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from domain import labels
from domain.errors import (
    CCMError,
    InventoryError,
    PoolUnavailableError,
    ProviderIDError,
    VMDeletedError,
    VMNotFoundError,
)
from domain.model import EventType, Node, NodeChange
from domain.policies.lifecycle import LifecycleAction, VMState, decide, needs_lookup
from domain.ports import EventRecorder, Inventory, NodeStore
from domain.providerid import ProviderID, is_ours
from domain.services.node_updates import update_on_conflict_retry
from domain.services.vm_lookup import node_pool_hint

log = logging.getLogger(__name__)

SOURCE = "cloud-node-lifecycle-controller"


@dataclass(frozen=True, slots=True)
class LifecyclePassResult:
    actions: Counter[LifecycleAction]


class LifecycleService:
    """Deletes Nodes whose VM is gone and taints Nodes whose VM is shut down."""

    def __init__(self, *, inventory: Inventory, nodes: NodeStore, events: EventRecorder) -> None:
        self._inventory = inventory
        self._nodes = nodes
        self._events = events

    async def run_pass(self) -> LifecyclePassResult:
        """One pass over every node; a failure on one node never stops the pass."""
        actions: Counter[LifecycleAction] = Counter()
        for node in await self._nodes.list():
            actions[await self.check(node)] += 1
        return LifecyclePassResult(actions)

    async def check_by_name(self, *, name: str) -> LifecycleAction:
        """Check one node now (an XO change said its VM was removed)."""
        node = await self._nodes.get(name=name)
        return LifecycleAction.NOTHING if node is None else await self.check(node)

    async def check(self, node: Node) -> LifecycleAction:
        state = await self.vm_state(node) if needs_lookup(node) else None
        action = decide(node=node, vm_state=state)
        try:
            await self._apply(node, action, state)
        except CCMError as err:
            log.warning("node %s: %s failed: %s", node.name, action.value, err)
        return action

    async def vm_state(self, node: Node) -> VMState:
        """What XO says about the node's VM; errors become states, never deletions."""
        if not is_ours(node.provider_id):
            return VMState.NOT_OURS
        try:
            pid = ProviderID.parse(node.provider_id)
        except ProviderIDError as err:
            log.warning("node %s: %s", node.name, err)
            return VMState.LOOKUP_FAILED
        try:
            vm = await self._inventory.get_vm(vm_id=pid.vm_id, pool_id=node_pool_hint(node, pid))
        except VMDeletedError:
            return VMState.DELETED
        except PoolUnavailableError as err:
            log.warning("node %s kept: %s", node.name, err)
            return VMState.POOL_UNKNOWN
        except VMNotFoundError as err:
            log.warning(
                "node %s kept: %s, and its pool is unknown: cannot confirm a deletion",
                node.name,
                err,
            )
            return VMState.POOL_UNKNOWN
        except InventoryError as err:
            log.warning("node %s kept: VM lookup failed: %s", node.name, err)
            return VMState.LOOKUP_FAILED
        return VMState.RUNNING if vm.running else VMState.SHUT_DOWN

    async def _apply(self, node: Node, action: LifecycleAction, state: VMState | None) -> None:
        if action is LifecycleAction.REMOVE_SHUTDOWN_TAINT:
            await update_on_conflict_retry(
                self._nodes,
                node,
                lambda n: (
                    NodeChange(remove_taint_keys=frozenset({labels.SHUTDOWN_TAINT.key}))
                    if n.has_taint(labels.SHUTDOWN_TAINT.key)
                    else NodeChange()
                ),
            )
        elif action is LifecycleAction.ADD_SHUTDOWN_TAINT:
            await update_on_conflict_retry(
                self._nodes,
                node,
                lambda n: (
                    NodeChange()
                    if n.has_taint(labels.SHUTDOWN_TAINT.key) or n.ready
                    else NodeChange(add_taints=(labels.SHUTDOWN_TAINT,))
                ),
            )
        elif action is LifecycleAction.DELETE_NODE:
            await self._delete(node)
        elif action is LifecycleAction.KEEP_UNCERTAIN:
            log.info("node %s is not ready and its VM state is %s: left alone", node.name, state)

    async def _delete(self, node: Node) -> None:
        await self._events.record(
            node=node,
            type=EventType.NORMAL,
            reason="DeletingNode",
            message=f"Deleting node {node.name} because it does not exist in the cloud provider",
            source=SOURCE,
        )
        try:
            await self._nodes.delete(node=node)
        except CCMError as err:
            await self._events.record(
                node=node,
                type=EventType.WARNING,
                reason="DeletingNodeFailed",
                message=f"Failed deleting node {node.name}: {err}",
                source=SOURCE,
            )
            raise
        log.info("node %s deleted: its VM no longer exists", node.name)
