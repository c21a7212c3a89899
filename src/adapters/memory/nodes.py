"""Kubernetes Nodes in memory, with the API server's guarantees."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from domain.errors import ConflictError, InvalidNodeError, NodeGoneError, NodeStoreError
from domain.model import Node, NodeAddress, NodeChange, Readiness


class InMemoryNodeStore:
    """Implements the NodeStore port like the API server would.

    - every write bumps ``resource_version``; an update from a stale copy
      raises ConflictError;
    - ``spec.providerID`` cannot change once set;
    - delete honours the uid precondition;
    - ``writes`` counts writes per kind, so tests can prove a no-op pass
      writes nothing; ``fail_writes`` makes writes fail (API server down).
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.writes: Counter[str] = Counter()
        self.fail_writes: NodeStoreError | None = None
        self._rv = itertools.count(1)
        self._watchers: list[asyncio.Queue[Node]] = []
        self._removal_watchers: list[asyncio.Queue[Node]] = []

    def _stamp(self, node: Node) -> Node:
        node = replace(node, resource_version=str(next(self._rv)))
        self.nodes[node.name] = node
        for queue in self._watchers:
            queue.put_nowait(node)
        return node

    def _write(self, kind: str) -> None:
        if self.fail_writes is not None:
            raise self.fail_writes
        self.writes[kind] += 1

    # -- the port ---------------------------------------------------------
    async def get(self, *, name: str) -> Node | None:
        return self.nodes.get(name)

    async def list(self) -> Sequence[Node]:
        return list(self.nodes.values())

    async def update(self, *, node: Node, change: NodeChange) -> Node:
        current = self._current(node)
        if current.resource_version != node.resource_version:
            raise ConflictError(f"node {node.name}: the object has been modified")
        if change.provider_id and current.provider_id and change.provider_id != current.provider_id:
            raise InvalidNodeError(
                f"node {node.name}: spec.providerID: Forbidden: node updates may not change "
                f'providerID except from "" to valid '
                f"({current.provider_id!r} -> {change.provider_id!r})"
            )
        self._write("update")
        return self._stamp(change.apply(current))

    async def set_addresses(self, *, node: Node, addresses: Sequence[NodeAddress]) -> Node:
        current = self._current(node)
        self._write("status")
        return self._stamp(replace(current, addresses=tuple(addresses)))

    async def delete(self, *, node: Node) -> None:
        current = self._current(node)
        self._write("delete")
        self.remove(current.name)

    async def watch(self) -> AsyncIterator[Node]:
        queue: asyncio.Queue[Node] = asyncio.Queue()
        self._watchers.append(queue)
        try:
            for node in list(self.nodes.values()):
                yield node
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(queue)

    async def removals(self) -> AsyncIterator[Node]:
        queue: asyncio.Queue[Node] = asyncio.Queue()
        self._removal_watchers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._removal_watchers.remove(queue)

    def _current(self, node: Node) -> Node:
        current = self.nodes.get(node.name)
        if current is None or (node.uid and current.uid != node.uid):
            raise NodeGoneError(f"node {node.name} not found (uid {node.uid or '-'})")
        return current

    # -- driving it (what kubelet or another writer would do) -------------
    def create(self, node: Node) -> Node:
        """Register a node as kubelet does (uid assigned, resourceVersion set)."""
        if node.name in self.nodes:
            raise NodeStoreError(f"node {node.name} already exists")
        return self._stamp(replace(node, uid=node.uid or str(uuid.uuid4())))

    def remove(self, name: str) -> Node:
        """Someone deletes the node (``kubectl delete node``)."""
        gone = self.nodes.pop(name)
        for queue in self._removal_watchers:
            queue.put_nowait(gone)
        return gone

    def set_readiness(self, name: str, readiness: Readiness) -> Node:
        return self._stamp(replace(self.nodes[name], readiness=readiness))

    def touch(self, name: str, **fields: object) -> Node:
        """Another writer changes the node (bumps its resourceVersion)."""
        return self._stamp(replace(self.nodes[name], **fields))  # type: ignore[arg-type]
