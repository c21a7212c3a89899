"""XO change events turned into work for the controllers.

A VM change names a VM; the controllers work on Nodes. The router maps one
to the other with the domain's matching rule (``domain.matching``: the
providerID, else systemUUID for nodes still waiting for their VM) and pokes
the right controller, so a live migration reaches its node in
well under a second instead of at the next 5-minute label sync. Each event
is first announced to the freshness ledger (``domain.freshness``): an answer
asked for before it no longer speaks for its VM.

The mapping is a :class:`~application.node_index.NodeIndex` kept by the
Node store's watch (added, changed) and removals (deleted), so an event
costs O(1) whatever the number of Nodes; each match is checked against the
store's copy before it is acted on, so a change the index has not heard of
yet never pokes the wrong node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from application.node_index import NodeIndex, node_vm_ids
from domain import labels
from domain.freshness import Freshness
from domain.model import ChangeKind, Node, VMChange
from domain.ports import Inventory, NodeStore

log = logging.getLogger(__name__)

Trigger = Callable[[str], Awaitable[None]]


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
        freshness: Freshness | None = None,
    ) -> None:
        self._inventory = inventory
        self._freshness = Freshness() if freshness is None else freshness
        self._nodes = nodes
        self._on_vm_changed = on_vm_changed
        self._on_vm_removed = on_vm_removed
        self._on_new_vm = on_new_vm
        self._on_resync = on_resync
        self.index = NodeIndex()

    async def index_all(self) -> None:
        """Index every Node now (at start; the watch then keeps the index)."""
        for node in await self._nodes.list():
            self.index.put(node)

    async def nodes_of(self, vm_id: str) -> list[Node]:
        found = []
        for name in self.index.names(vm_id):
            node = await self._nodes.get(name=name)
            if node is None:
                self.index.drop(name)
            elif vm_id in node_vm_ids(node):
                found.append(node)
            else:
                self.index.put(node)  # changed meanwhile; the watch will say so too
        return found

    async def handle(self, change: VMChange) -> None:
        # First, before any await: from now on no answer asked for before this event
        # speaks for its VM (``domain.freshness``), whoever holds one.
        if change.kind is ChangeKind.RESYNC:
            self._freshness.announce_all()
            for resync in self._on_resync:
                resync()
            return
        if change.vm is None:
            return
        self._freshness.announce(change.vm.id)
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

    async def _follow_nodes(self) -> None:
        async for node in self._nodes.watch():
            # The store's copy, not the event's: a deletion reported meanwhile on
            # the other stream must not be undone by a late update.
            current = await self._nodes.get(name=node.name)
            if current is not None:
                self.index.put(current)

    async def _follow_removals(self) -> None:
        async for node in self._nodes.removals():
            self.index.drop(node.name)

    async def _route(self) -> None:
        async for change in self._inventory.changes():
            try:
                await self.handle(change)
            except Exception:
                log.exception("handling XO change %s failed", change.kind.value)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follow_removals(), name="xo-change-router-removals")
            tg.create_task(self._follow_nodes(), name="xo-change-router-nodes")
            await self.index_all()
            tg.create_task(self._route(), name="xo-change-router-events")
