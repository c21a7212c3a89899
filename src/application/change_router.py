"""XO change events turned into work for the controllers.

A VM change names a VM; the controllers work on Nodes. A host or pool change
(its name or tags: a zone may come from a host tag) pokes label sync for the
nodes labelled as placed there. The router maps one
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
from typing import Protocol

from application.node_index import NodeIndex, node_vm_ids
from domain import labels
from domain.freshness import Freshness
from domain.model import Change, ChangeKind, Node, PlacementChange, VMChange
from domain.policies.label_values import sanitize_label_value
from domain.ports import Inventory, NodeStore

log = logging.getLogger(__name__)


class Pokes(Protocol):
    """What an XO change makes the controllers do (``EnabledControllers`` pokes only
    those ``--controllers`` enables)."""

    async def vm_changed(self, name: str) -> None:
        """Node ``name``'s VM changed: its labels may have to follow (label sync)."""
        ...

    async def vm_removed(self, name: str) -> None:
        """Node ``name``'s VM left XO: check the node now (lifecycle)."""
        ...

    async def vm_appeared(self, name: str) -> None:
        """The VM node ``name`` waits for appeared or changed: initialize it (cloud-node)."""
        ...

    def resynced(self) -> None:
        """The stream (re)connected, changes may have been missed: re-sync every node."""
        ...


class ChangeRouter:
    """Consumes the inventory's change stream and pokes the controllers."""

    name = "xo-change-router"

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        pokes: Pokes,
        freshness: Freshness | None = None,
    ) -> None:
        self._inventory = inventory
        self._freshness = Freshness() if freshness is None else freshness
        self._nodes = nodes
        self._pokes = pokes
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

    async def handle(self, change: Change) -> None:
        if isinstance(change, PlacementChange):
            await self._placement_changed(change)
            return
        # First, before any await: from now on no answer asked for before this event
        # speaks for its VM (``domain.freshness``), whoever holds one.
        if change.kind is ChangeKind.RESYNC:
            self._freshness.announce_all()
            self._pokes.resynced()
            return
        if change.vm is None:
            return
        self._freshness.announce(change.vm.id)
        for node in await self.nodes_of(change.vm.id):
            log.debug("VM %s %s: poking node %s", change.vm.id, change.kind.value, node.name)
            if change.kind is ChangeKind.REMOVED:
                await self._pokes.vm_removed(node.name)
            elif node.has_taint(labels.UNINITIALIZED_TAINT_KEY):
                await self._pokes.vm_appeared(node.name)
            else:
                await self._pokes.vm_changed(node.name)

    async def _placement_changed(self, change: PlacementChange) -> None:
        """A host or pool changed (its name, a tag that may be a zone or region): each
        initialized node labelled as placed there is announced and re-synced at once,
        instead of at the next label pass.

        The nodes come from the store's cache, so their VMs are announced after an
        await: an answer applied meanwhile was asked for before the change reached the
        host cache, and the re-sync's own answer (asked for now) is newer than it. A
        node whose VM just moved there, not yet labelled so, was poked by its VM's event.
        """
        if change.host is not None:
            key, ident = labels.HOST_ID, change.host.id
        elif change.pool is not None:
            key, ident = labels.POOL_ID, change.pool.id
        else:
            return
        value = sanitize_label_value(ident)
        placed = [
            node
            for node in await self._nodes.list()
            if node.labels.get(key) == value and not node.has_taint(labels.UNINITIALIZED_TAINT_KEY)
        ]
        for node in placed:
            for vm_id in node_vm_ids(node):
                self._freshness.announce(vm_id)
        for node in placed:
            log.debug("%s %s changed: poking node %s", key, ident, node.name)
            await self._pokes.vm_changed(node.name)

    async def _follow_nodes(self) -> None:
        async for node in self._nodes.watch():
            # The store's copy, not the event's: a deletion reported meanwhile on
            # the other stream must not be undone by a late update.
            current = await self._nodes.get(name=node.name)
            if current is not None:
                self.index.put(current)

    async def _follow_removals(self) -> None:
        async for node in self._nodes.removals():
            # The other stream may have indexed a Node created again under this name
            # already: the store says which Node the name is now.
            current = await self._nodes.get(name=node.name)
            if current is None:
                self.index.drop(node.name)
            else:
                self.index.put(current)

    async def _route(self) -> None:
        async for change in self._inventory.changes():
            try:
                await self.handle(change)
            except Exception:
                what = change.kind.value if isinstance(change, VMChange) else "placement"
                log.exception("handling XO change %s failed", what)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follow_removals(), name="xo-change-router-removals")
            tg.create_task(self._follow_nodes(), name="xo-change-router-nodes")
            await self.index_all()
            tg.create_task(self._route(), name="xo-change-router-events")
