"""XO change events turned into work for the controllers.

A VM change names a VM; the controllers work on Nodes. The router maps one
to the other with the domain's matching rule (``domain.matching``: the
providerID, else systemUUID for nodes still waiting for their VM) and pokes
the right controller, so a live migration reaches its node in
well under a second instead of at the next 5-minute label sync.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from domain import labels
from domain.errors import ProviderIDError
from domain.matching import vm_id_candidates
from domain.model import ChangeKind, Node, VMChange
from domain.ports import Inventory, NodeStore

log = logging.getLogger(__name__)

Trigger = Callable[[str], Awaitable[None]]


def _node_vm_ids(node: Node) -> tuple[str, ...]:
    try:
        return vm_id_candidates(node)
    except ProviderIDError:
        return ()


class ChangeRouter:
    """Consumes the inventory's change stream and triggers the controllers."""

    name = "xo-change-router"

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        on_vm_changed: list[Trigger],
        on_vm_removed: list[Trigger],
        on_new_vm: list[Trigger],
        on_resync: list[Callable[[], None]],
    ) -> None:
        self._inventory = inventory
        self._nodes = nodes
        self._on_vm_changed = on_vm_changed
        self._on_vm_removed = on_vm_removed
        self._on_new_vm = on_new_vm
        self._on_resync = on_resync

    async def nodes_of(self, vm_id: str) -> list[Node]:
        return [n for n in await self._nodes.list() if vm_id in _node_vm_ids(n)]

    async def handle(self, change: VMChange) -> None:
        if change.kind is ChangeKind.RESYNC:
            for resync in self._on_resync:
                resync()
            return
        if change.vm is None:
            return
        for node in await self.nodes_of(change.vm.id):
            waiting = node.has_taint(labels.UNINITIALIZED_TAINT_KEY)
            if change.kind is ChangeKind.REMOVED:
                targets = self._on_vm_removed
            elif waiting:
                targets = self._on_new_vm
            else:
                targets = self._on_vm_changed
            log.debug("VM %s %s: poking node %s", change.vm.id, change.kind.value, node.name)
            for trigger in targets:
                await trigger(node.name)

    async def run(self) -> None:
        async for change in self._inventory.changes():
            try:
                await self.handle(change)
            except Exception:
                log.exception("handling XO change %s failed", change.kind.value)
