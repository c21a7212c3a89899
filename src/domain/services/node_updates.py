"""Optimistic Node updates shared by the services."""

from __future__ import annotations

from collections.abc import Callable

from domain.errors import ConflictError, NodeGoneError
from domain.model import Node, NodeChange
from domain.ports import NodeStore

#: Attempts before a conflicting update is given back to the caller's queue.
MAX_CONFLICT_RETRIES = 5


async def update_on_conflict_retry(
    nodes: NodeStore, node: Node, plan: Callable[[Node], NodeChange]
) -> tuple[Node, NodeChange]:
    """Write ``plan(node)``; on a 409, re-read the node and plan again.

    The plan is recomputed from the fresh copy, so a concurrent writer's
    labels are never overwritten with stale ones. Returns the written node and
    the change that was written (empty: nothing was written).
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        change = plan(node)
        if change.empty:
            return node, change
        try:
            return await nodes.update(node=node, change=change), change
        except ConflictError:
            fresh = await nodes.get(name=node.name)
            if fresh is None:
                raise NodeGoneError(f"node {node.name} was deleted") from None
            node = fresh
    raise ConflictError(
        f"node {node.name}: still conflicting after {MAX_CONFLICT_RETRIES} attempts"
    )
