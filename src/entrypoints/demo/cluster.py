"""kubelet's side of the demo: Nodes join, report readiness, and show what the CCM did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from adapters.kubernetes import KubeClient, KubernetesNodeStore
from adapters.memory import InMemoryEventRecorder, InMemoryNodeStore
from domain import labels as L
from domain.model import Node, Readiness
from entrypoints.demo.world import UNINITIALIZED


class ClusterSide(Protocol):
    """Where the demo's Nodes live."""

    @property
    def label(self) -> str: ...

    async def join(self, name: str, system_uuid: str) -> None: ...

    async def set_readiness(self, name: str, readiness: Readiness) -> None: ...

    async def current(self) -> dict[str, Node]:
        """Every node, by name."""
        ...

    async def recorded_events(self) -> list[tuple[str, str, str, str]]:
        """(type, reason, node, message) of every event about the demo's nodes."""
        ...


class MemoryCluster:
    """The container's in-memory Node store and event recorder."""

    label = "in-memory cluster"

    def __init__(self, nodes: InMemoryNodeStore, events: InMemoryEventRecorder) -> None:
        self.store = nodes
        self.recorder = events

    async def join(self, name: str, system_uuid: str) -> None:
        self.store.create(
            Node(
                name=name,
                system_uuid=system_uuid,
                taints=(UNINITIALIZED,),
                readiness=Readiness.TRUE,
            )
        )

    async def set_readiness(self, name: str, readiness: Readiness) -> None:
        self.store.set_readiness(name, readiness)

    async def recorded_events(self) -> list[tuple[str, str, str, str]]:
        return [(e.type.value, e.reason, e.node, e.message) for e in self.recorder.events]

    async def current(self) -> dict[str, Node]:
        return dict(self.store.nodes)


def _ready_condition(status: str) -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady" if status == "True" else "KubeletNotReady",
        "message": "posted by the demo's make-believe kubelet",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


class RealCluster:
    """A real kube-apiserver on loopback, through the container's Kubernetes client
    and Node cache (the CCM's own adapters); kubelet's requests go through the client."""

    label = "real kube-apiserver on loopback"

    def __init__(self, client: KubeClient, store: KubernetesNodeStore) -> None:
        self.client = client
        self.store = store

    async def join(self, name: str, system_uuid: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {
                "taints": [
                    {"key": L.UNINITIALIZED_TAINT_KEY, "value": "true", "effect": "NoSchedule"}
                ]
            },
            "status": {
                "nodeInfo": {"systemUUID": system_uuid, "kubeletVersion": "v1.36.3"},
                "conditions": [_ready_condition("True")],
            },
        }
        await self.client.request("POST", "/api/v1/nodes", body=node)

    async def set_readiness(self, name: str, readiness: Readiness) -> None:
        await self.client.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            body={"status": {"conditions": [_ready_condition(readiness.value)]}},
            content_type="application/strategic-merge-patch+json",
        )

    async def recorded_events(self) -> list[tuple[str, str, str, str]]:
        answer = await self.client.request(
            "GET", "/api/v1/events", query=[("fieldSelector", "involvedObject.kind=Node")]
        )
        items = sorted(answer.get("items", []), key=lambda e: e.get("firstTimestamp") or "")
        return [
            (e["type"], e["reason"], e["involvedObject"]["name"], e.get("message", ""))
            for e in items
        ]

    async def current(self) -> dict[str, Node]:
        return {n.name: n for n in await self.store.list()}
