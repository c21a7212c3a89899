"""One driver per subject of the NodeStore, LeaderElector and EventRecorder contracts.

A driver holds the subject (the port under test) and does what the world
around it would do: kubelet registering or changing a Node, another replica
taking the Lease, someone reading the events back. The in-memory drivers act
on the kits' own state; the Kubernetes drivers act on a real kube-apiserver
through an admin client and wait until the subject's cache has seen it, so
the same test body holds for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from adapters.kubernetes import (
    KubeClient,
    KubernetesBreakerStore,
    KubernetesEventRecorder,
    KubernetesNodeStore,
    LeaseLeaderElector,
)
from adapters.kubernetes.convert import node_from_object
from adapters.kubernetes.event_queue import QueuedEventRecorder
from adapters.memory import (
    InMemoryBreakerStore,
    InMemoryEventRecorder,
    InMemoryLeaderElector,
    InMemoryNodeStore,
)
from adapters.sole_leader import SoleLeader
from domain.errors import BreakerStoreError
from domain.model import Node, Readiness
from domain.ports import DeletionBreakerStore, EventRecorder, LeaderElector, NodeStore
from tests.integration.kube import create_node, delete_node, label_node
from tests.integration.waiting import until
from tests.unit.factories import UNINITIALIZED

#: Short Lease timings (retry < renew deadline < lease duration), as the leader tests use.
LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
NAMESPACE = "kube-system"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- NodeStore -------------------------------------------------------------------
class NodeWorld(Protocol):
    """The Nodes around a NodeStore subject."""

    store: NodeStore

    async def register(
        self, name: str, *, system_uuid: str = "", labels: Mapping[str, str] | None = None
    ) -> Node:
        """kubelet registers ``name`` (tainted, Ready); returns it once the store sees it."""
        ...

    async def relabel(self, name: str, **labels: str) -> Node:
        """Another writer changes the Node's labels; returns it once the store sees it."""
        ...

    async def remove(self, name: str) -> None:
        """Someone else deletes the Node; returns once the store no longer sees it."""
        ...

    async def seen(self, name: str, check: Callable[[Node], bool]) -> Node:
        """The store's copy of ``name``, once it satisfies ``check``."""
        ...


class MemoryNodeWorld:
    name = "memory"

    def __init__(self) -> None:
        self.memory = InMemoryNodeStore()
        self.store: NodeStore = self.memory

    async def register(
        self, name: str, *, system_uuid: str = "", labels: Mapping[str, str] | None = None
    ) -> Node:
        return self.memory.create(
            Node(
                name=name,
                system_uuid=system_uuid,
                labels=MappingProxyType({"kubernetes.io/hostname": name, **(labels or {})}),
                taints=(UNINITIALIZED,),
                readiness=Readiness.TRUE,
            )
        )

    async def relabel(self, name: str, **labels: str) -> Node:
        node = self.memory.nodes[name]
        return self.memory.touch(name, labels=MappingProxyType({**node.labels, **labels}))

    async def remove(self, name: str) -> None:
        self.memory.remove(name)

    async def seen(self, name: str, check: Callable[[Node], bool]) -> Node:
        node = self.memory.nodes[name]
        assert check(node)
        return node


class KubernetesNodeWorld:
    """A KubernetesNodeStore on the real API server; ``kube`` is an admin client."""

    name = "kubernetes"

    def __init__(self, kube: KubeClient, store: KubernetesNodeStore) -> None:
        self.kube = kube
        self.kubernetes = store
        self.store: NodeStore = store
        self.names: list[str] = []

    async def register(
        self, name: str, *, system_uuid: str = "", labels: Mapping[str, str] | None = None
    ) -> Node:
        self.names.append(name)
        created = await create_node(self.kube, name, system_uuid=system_uuid, labels=labels)
        uid = created["metadata"]["uid"]
        return await self.seen(name, lambda n: n.uid == uid)

    async def relabel(self, name: str, **labels: str) -> Node:
        changed = await label_node(self.kube, name, **labels)
        version = changed["metadata"]["resourceVersion"]
        return await self.seen(name, lambda n: n.resource_version == version)

    async def remove(self, name: str) -> None:
        await delete_node(self.kube, name)

        async def absent() -> bool:
            return await self.store.get(name=name) is None

        await until(absent)

    async def seen(self, name: str, check: Callable[[Node], bool]) -> Node:
        found: list[Node] = []

        async def matches() -> bool:
            node = await self.store.get(name=name)
            if node is not None and check(node):
                found.append(node)
            return bool(found)

        await until(matches)
        return found[0]

    async def cleanup(self) -> None:
        for name in self.names:
            await delete_node(self.kube, name)


# -- LeaderElector -----------------------------------------------------------------
class Leadership(Protocol):
    """The other replicas around a LeaderElector subject."""

    elector: LeaderElector
    #: False when nobody else can ever take leadership (``--leader-elect=false``).
    contested: bool

    async def usurp(self) -> None:
        """Another replica takes leadership from the subject."""
        ...

    async def successor_leads(self) -> bool:
        """Whether another replica leads at once now (right after a release)."""
        ...


class MemoryLeadership:
    name = "memory"
    contested = True

    def __init__(self) -> None:
        self.memory = InMemoryLeaderElector(leading=True)
        self.elector: LeaderElector = self.memory

    async def usurp(self) -> None:
        self.memory.revoke()

    async def successor_leads(self) -> bool:
        return self.memory.released


class SoleLeadership:
    name = "sole"
    contested = False

    def __init__(self) -> None:
        self.elector: LeaderElector = SoleLeader()

    async def usurp(self) -> None:
        raise AssertionError("nobody else can lead")

    async def successor_leads(self) -> bool:
        raise AssertionError("nobody else can lead")


class LeaseLeadership:
    """A LeaseLeaderElector and, when the test asks, a second candidate on its Lease."""

    name = "lease"
    contested = True

    def __init__(self, connect: Callable[[], Awaitable[KubeClient]]) -> None:
        self._connect = connect
        self.lease = unique("contract-lease")
        self.clients: list[KubeClient] = []
        self.electors: list[LeaseLeaderElector] = []
        self.elector: LeaderElector

    async def candidate(self) -> LeaseLeaderElector:
        client = await self._connect()
        self.clients.append(client)
        made = LeaseLeaderElector(
            client,
            name=self.lease,
            namespace=NAMESPACE,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        )
        self.electors.append(made)
        return made

    async def start(self) -> LeaseLeadership:
        self.elector = await self.candidate()
        return self

    async def usurp(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{self.lease}"
        client = self.clients[0]
        current = await client.request("GET", path)
        current["spec"]["holderIdentity"] = "another-replica"
        await client.request("PUT", path, body=current)

    async def successor_leads(self) -> bool:
        successor = await self.candidate()
        try:
            async with asyncio.timeout(RETRY * 2.5):  # far below the lease duration
                await successor.acquire()
        except TimeoutError:
            return False
        return True

    async def cleanup(self) -> None:
        for candidate in self.electors:
            await candidate.stop()
        for client in self.clients:
            await client.aclose()


# -- EventRecorder -------------------------------------------------------------------
class EventLog(Protocol):
    """Where a recorder's events can be read back."""

    recorder: EventRecorder

    async def node(self) -> Node:
        """A Node to record events about."""
        ...

    async def about(self, node: Node) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the events recorded about ``node``, oldest first."""
        ...


class MemoryEventLog:
    name = "memory"

    def __init__(self) -> None:
        self.memory = InMemoryEventRecorder()
        self.recorder: EventRecorder = self.memory

    async def node(self) -> Node:
        return Node(name=unique("ev"), uid=str(uuid.uuid4()))

    async def about(self, node: Node) -> list[tuple[str, str, str]]:
        return [
            (e.type.value, e.reason, e.message) for e in self.memory.events if e.node == node.name
        ]


class KubernetesEventLog:
    name = "kubernetes"

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        # As the CCM wires it: queued, written in the background.
        self.queued = QueuedEventRecorder(KubernetesEventRecorder(kube))
        self.recorder: EventRecorder = self.queued
        self.names: list[str] = []

    async def node(self) -> Node:
        name = unique("ev")
        self.names.append(name)
        return node_from_object(await create_node(self.kube, name))

    async def about(self, node: Node) -> list[tuple[str, str, str]]:
        answer = await self.kube.request(
            "GET",
            "/api/v1/namespaces/default/events",
            query=[("fieldSelector", f"involvedObject.name={node.name}")],
        )
        items = sorted(answer.get("items") or [], key=lambda e: e.get("firstTimestamp") or "")
        return [(e["type"], e["reason"], e.get("message", "")) for e in items]

    async def cleanup(self) -> None:
        await self.queued.aclose()
        for name in self.names:
            await delete_node(self.kube, name)


# -- DeletionBreakerStore ---------------------------------------------------------------
class BreakerWorld(Protocol):
    """The cluster around a DeletionBreakerStore subject."""

    store: DeletionBreakerStore

    async def other_writer(self) -> DeletionBreakerStore:
        """The same state through another client (doctor's reset, the next process)."""
        ...

    async def spoil(self) -> None:
        """Someone breaks the stored state (hand-edited annotations, no access)."""
        ...


class MemoryBreakerWorld:
    name = "memory"

    def __init__(self) -> None:
        self.memory = InMemoryBreakerStore()
        self.store: DeletionBreakerStore = self.memory

    async def other_writer(self) -> DeletionBreakerStore:
        return self.memory

    async def spoil(self) -> None:
        self.memory.fail_reads = BreakerStoreError("cannot read the deletion breaker")


class KubernetesBreakerWorld:
    """A KubernetesBreakerStore on a Lease of its own; ``kube`` is an admin client."""

    name = "kubernetes"

    def __init__(self, kube: KubeClient, client: KubeClient) -> None:
        self.kube = kube
        self.leader_lease = unique("contract-breaker")
        self.store: DeletionBreakerStore = KubernetesBreakerStore(
            client, leader_lease=self.leader_lease, namespace=NAMESPACE
        )
        self.path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/"
            f"{self.leader_lease}-deletion-breaker"
        )

    async def other_writer(self) -> DeletionBreakerStore:
        return KubernetesBreakerStore(
            self.kube, leader_lease=self.leader_lease, namespace=NAMESPACE
        )

    async def spoil(self) -> None:
        lease = await self.kube.request("GET", self.path)
        lease["metadata"].setdefault("annotations", {})[
            "deletion-breaker.k8s.xenorchestra/deletions"
        ] = "yesterday"
        await self.kube.request("PUT", self.path, body=lease)

    async def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            await self.kube.request("DELETE", self.path)
