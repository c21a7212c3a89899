"""Optimistic Node updates, and the events said with them, shared by the services."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from domain.errors import ConflictError, InventoryError, NodeGoneError
from domain.model import VM, Host, Node, NodeChange, NodeEventSpec, Pool
from domain.policies.topology import resident_host_id
from domain.ports import EventRecorder, Inventory, NodeStore

#: Attempts before a conflicting update is given back to the caller's queue.
MAX_CONFLICT_RETRIES = 5


class Planned(Protocol):
    """What a plan returns: the change to write, and whatever else it decided."""

    @property
    def change(self) -> NodeChange: ...


P = TypeVar("P", bound=Planned)


async def apply_plan(nodes: NodeStore, node: Node, plan: Callable[[Node], P]) -> tuple[Node, P]:
    """Write ``plan(node).change``; on a 409, re-read the node and plan again.

    The plan is recomputed from the fresh copy, so a concurrent writer's labels are
    never overwritten with stale ones (cloud-provider computes its modifiers, then
    applies them inside ``RetryOnConflict`` the same way); a fresh copy of another
    uid is another Node (NodeGoneError). Returns the written node
    (the one given when nothing was written) and the plan that was applied.
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        planned = plan(node)
        if planned.change.empty:
            return node, planned
        try:
            return await nodes.update(node=node, change=planned.change), planned
        except ConflictError:
            fresh = await nodes.get(name=node.name)
            if fresh is None or fresh.uid != node.uid:
                # Deleted, or deleted and created again under its name: another node,
                # which comes with its own event. The plan was made for this one (its
                # VM found by its providerID or uuid) and must not land on that one.
                raise NodeGoneError(
                    f"node {node.name} (uid {node.uid or '-'}) was deleted"
                ) from None
            node = fresh
    raise ConflictError(
        f"node {node.name}: still conflicting after {MAX_CONFLICT_RETRIES} attempts"
    )


class _Change:
    __slots__ = ("change",)

    def __init__(self, change: NodeChange) -> None:
        self.change = change


async def update_on_conflict_retry(
    nodes: NodeStore, node: Node, plan: Callable[[Node], NodeChange]
) -> tuple[Node, NodeChange]:
    """:func:`apply_plan` for a plan that is only a change."""
    written, planned = await apply_plan(nodes, node, lambda current: _Change(plan(current)))
    return written, planned.change


async def say(
    events: EventRecorder, node: Node, specs: Iterable[NodeEventSpec], *, source: str
) -> None:
    """Record each of ``specs`` about ``node``."""
    for spec in specs:
        await events.record(
            node=node, type=spec.type, reason=spec.reason, message=spec.message, source=source
        )


async def placement_of(inventory: Inventory, vm: VM) -> tuple[Host | None, Pool | None]:
    """The host the VM runs on and its pool, as the inventory holds them (a halted VM's
    ``$container`` is its pool: no host to ask for)."""
    resident = resident_host_id(vm)
    host = await inventory.get_host(host_id=resident) if resident else None
    pool = await inventory.get_pool(pool_id=vm.pool_id) if vm.pool_id else None
    return host, pool


async def placement_overtaken(inventory: Inventory, host: Host | None, pool: Pool | None) -> bool:
    """Whether the inventory now holds another ``host`` or ``pool`` than the labels just
    written were computed from: an event changed it (a tag, a name) while the write
    was on its way, and the change router poked only the nodes labelled so at that
    moment. The writer then syncs the node again, from the one held now. XO failing to
    say (a cache miss asks it) counts as changed: the node is followed, not dropped."""
    try:
        if host is not None and await inventory.get_host(host_id=host.id) != host:
            return True
        return pool is not None and await inventory.get_pool(pool_id=pool.id) != pool
    except InventoryError:
        return True
