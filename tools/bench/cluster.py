"""Nodes at scale on the real API server, and watching what the CCM does to them.

- :func:`bench_client`: an admin client with many threads and no rate limit, and
  its own User-Agent (so the audit log tells its requests from the CCM's);
- :func:`kubelet_node`: a Node as kubelet registers it, with a realistic
  ``status.images`` so list/watch payloads are the size real ones are;
- :func:`initialized_node`: the same Node as the CCM leaves it (computed with
  the domain's own policies), to set up thousands without waiting for the CCM;
- :func:`create_nodes` / :func:`delete_run`: bounded-concurrency create, and a
  ``deletecollection`` by run label;
- :class:`NodeWatch`: list+watch (the adapter's Reflector) keeping a lean view
  of every Node of a run, with the time each one was first seen initialized
  and deleted, and hooks for invariant checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.kubernetes import ClientSettings, KubeClient, Reflector, connect, unconverted
from adapters.kubernetes.convert import address_to_object, node_from_object
from domain.model import InventorySnapshot
from domain.policies.initialization import plan_initialization
from domain.policies.metadata import instance_metadata
from tests.integration.kube import UNINITIALIZED, node_object

RUN_LABEL = "bench.xoccm/run"
BENCH_USER_AGENT = "xoccm-bench"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"


async def bench_client(
    kubeconfig: Path | str, *, workers: int = 16, name: str = "bench"
) -> KubeClient:
    settings = ClientSettings(
        qps=0, burst=1, workers=workers, read_timeout=300.0, user_agent=BENCH_USER_AGENT
    )
    return await connect(str(kubeconfig), settings=settings, name=name)


def _images(seed: int) -> list[dict[str, Any]]:
    """What kubelet reports of a node's images: most of a real Node's bytes."""
    return [
        {
            "names": [
                f"registry.example/team/app-{seed % 7}-{i}@sha256:{(seed * 31 + i):064x}",
                f"registry.example/team/app-{seed % 7}-{i}:v1.{i}",
            ],
            "sizeBytes": 10_000_000 + i * 1_000_003,
        }
        for i in range(12)
    ]


def kubelet_node(
    name: str,
    *,
    run: str,
    system_uuid: str,
    ready: str = "True",
    uninitialized: bool = True,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    obj = node_object(
        name,
        uninitialized=uninitialized,
        ready=ready,
        system_uuid=system_uuid,
        labels={RUN_LABEL: run, **(labels or {})},
    )
    obj["status"]["images"] = _images(hash(name) & 0xFFFF)
    obj["status"]["capacity"] = {"cpu": "2", "memory": "4026532Ki", "pods": "110"}
    obj["status"]["allocatable"] = {"cpu": "2", "memory": "3924132Ki", "pods": "110"}
    return obj


def initialized_node(
    obj: dict[str, Any], *, vm_id: str, snapshot: InventorySnapshot
) -> dict[str, Any]:
    """``obj`` (a kubelet Node) as the CCM initializes it for VM ``vm_id``."""
    vm = snapshot.vms[vm_id]
    node = node_from_object(obj)
    metadata = instance_metadata(
        vm=vm, host=snapshot.hosts.get(vm.container), pool=snapshot.pools.get(vm.pool_id), node=node
    )
    plan = plan_initialization(node=node, metadata=metadata)
    assert not plan.wait_reason, plan.wait_reason
    change = plan.change
    if change.provider_id:
        obj["spec"]["providerID"] = change.provider_id
    obj["metadata"]["labels"].update(change.set_labels)
    obj["spec"]["taints"] = [t for t in obj["spec"]["taints"] if t["key"] != UNINITIALIZED]
    obj["status"]["addresses"] = [address_to_object(a) for a in plan.addresses]
    return obj


async def create_nodes(
    kube: KubeClient, objects: Iterable[dict[str, Any]], *, concurrency: int = 32
) -> dict[str, float]:
    """POST every Node, ``concurrency`` at a time; name -> monotonic time it was created."""
    created: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(obj: dict[str, Any]) -> None:
        async with gate:
            await kube.request("POST", "/api/v1/nodes", body=obj, request_timeout=(5, 120))
            created[obj["metadata"]["name"]] = time.monotonic()

    async with asyncio.TaskGroup() as tg:
        for obj in objects:
            tg.create_task(one(obj))
    return created


async def delete_run(kube: KubeClient, run: str) -> None:
    """Delete every Node of ``run`` in one request (the server deletes them one by one)."""
    await kube.request(
        "DELETE",
        "/api/v1/nodes",
        query=[("labelSelector", f"{RUN_LABEL}={run}")],
        request_timeout=(5, 600),
    )


@dataclass
class NodeView:
    """What the watch keeps of one Node."""

    name: str
    uid: str
    labels: dict[str, str]
    taints: frozenset[str]
    ready: bool
    provider_id: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> NodeView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        return cls(
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            labels=dict(meta.get("labels") or {}),
            taints=frozenset(str(t.get("key")) for t in spec.get("taints") or []),
            ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            provider_id=str(spec.get("providerID") or ""),
        )

    @property
    def initialized(self) -> bool:
        return UNINITIALIZED not in self.taints


Hook = Callable[[str, NodeView | None, NodeView | None], None]


@dataclass
class NodeWatch:
    """Every Node whose name starts with ``prefix``, as the API server has it.

    ``initialized_at`` / ``deleted_at`` (monotonic) are when each Node was
    first seen without the uninitialized taint / seen gone. ``hooks`` get
    ``(name, before, after)`` for every change (after None: deleted).
    """

    client: KubeClient
    prefix: str
    nodes: dict[str, NodeView] = field(default_factory=dict)
    initialized_at: dict[str, float] = field(default_factory=dict)
    deleted_at: dict[str, float] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _reflector: Reflector[dict[str, Any]] | None = None
    _synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> NodeWatch:
        self._reflector = Reflector(
            self.client,
            path="/api/v1/nodes",
            convert=unconverted,
            on_sync=self._on_sync,
            on_event=self._on_event,
            watch_timeout=60.0,
            backoff_base=0.2,
            backoff_cap=2.0,
        )
        self._task = asyncio.create_task(self._reflector.run(), name=f"watch-{self.prefix}")
        await asyncio.wait_for(self._synced.wait(), 60)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _mine(self, obj: Mapping[str, Any]) -> bool:
        return str((obj.get("metadata") or {}).get("name", "")).startswith(self.prefix)

    def _on_sync(self, items: Iterable[Mapping[str, Any]]) -> None:
        seen = set()
        for obj in items:
            if self._mine(obj):
                view = NodeView.of(obj)
                seen.add(view.name)
                self._put(view)
        for name in [n for n in self.nodes if n not in seen]:
            self._gone(name)
        self._synced.set()

    def _on_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        if not self._mine(obj):
            return
        view = NodeView.of(obj)
        if kind == "DELETED":
            current = self.nodes.get(view.name)
            if current is not None and current.uid == view.uid:
                self._gone(view.name)
        else:
            self._put(view)

    def _put(self, view: NodeView) -> None:
        before = self.nodes.get(view.name)
        self.nodes[view.name] = view
        self.deleted_at.pop(view.name, None)
        if view.initialized and view.name not in self.initialized_at:
            self.initialized_at[view.name] = time.monotonic()
        for hook in self.hooks:
            hook(view.name, before, view)
        self.changed.set()

    def _gone(self, name: str) -> None:
        before = self.nodes.pop(name, None)
        self.deleted_at[name] = time.monotonic()
        for hook in self.hooks:
            hook(name, before, None)
        self.changed.set()

    async def wait_for(self, check: Callable[[], bool], *, within: float) -> float:
        """Seconds until ``check()`` holds (re-checked on every change, and every 0.5 s);
        TimeoutError after ``within``."""
        started = time.monotonic()
        deadline = started + within
        while True:
            self.changed.clear()
            if check():
                return time.monotonic() - started
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not reached within {within:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(0.5, remaining))
