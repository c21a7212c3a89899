"""The ports: what the services need from the world, as async Protocols.

Every parameter is keyword-only so adapters cannot silently swap two ids.
Each method's docstring is its contract; the contract tests hold every
adapter to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from domain.certificates import CertificateRequest
from domain.model import (
    VM,
    Change,
    EventType,
    Host,
    InventorySnapshot,
    Node,
    NodeAddress,
    NodeChange,
    Pool,
    PoolPresence,
    XOServer,
)
from domain.policies.deletion_breaker import BreakerState, StoredBreaker

if TYPE_CHECKING:  # freshness builds on these ports
    from domain.freshness import ObservedSnapshot


class Inventory(Protocol):
    """Xen Orchestra, as far as the CCM reads it."""

    async def get_vm(self, *, vm_id: str) -> VM | None:
        """The VM with this id as XO says now (never from a cache), or None when XO
        answers that it does not know it. None is no proof of a deletion: XO forgets
        every VM of a pool it loses (``domain.matching.confirm_absence`` decides what an
        absence means). Any other failure is an InventoryError."""
        ...

    async def pools_known(self, *, pool_ids: Collection[str]) -> Mapping[str, PoolPresence]:
        """What XO holds of each of these pools now (ids lower-cased); only ``HELD``
        (the pool and its VMs) vouches for it. Asked of XO, never from a cache, all at
        once; concurrent askers share requests. A question XO does not answer raises
        InventoryError, never "lost"."""
        ...

    def pools_seen(self, *, vm_id: str) -> frozenset[str]:
        """The pools this process saw XO place the VM in (lists, events, lookups), gone
        from XO or not (empty: never seen)."""
        ...

    async def servers(self) -> Sequence[XOServer] | None:
        """XO's connections to its pools, asked now; None when this XO has no list of
        them (``domain.policies.xo_servers`` reads what they say)."""
        ...

    async def find_vms_by_name(self, *, name_label: str) -> Sequence[VM]:
        """Every VM whose ``name_label`` is exactly ``name_label``."""
        ...

    async def get_host(self, *, host_id: str) -> Host | None:
        """The host, or None when XO does not know it; may be served from a cache."""
        ...

    async def get_pool(self, *, pool_id: str) -> Pool | None:
        """The pool, or None when XO does not know it; may be served from a cache."""
        ...

    async def snapshot(self) -> InventorySnapshot:
        """All VMs, hosts and pools: at most three XO requests, whatever their number."""
        ...

    def changes(self) -> AsyncIterator[Change]:
        """VM changes as they happen, a RESYNC entry after every (re)connect, and a
        PlacementChange for a host or pool XO reports updated (name, tags): once
        yielded, ``get_host``/``get_pool`` answer with the new one."""
        ...

    async def admin_view(self) -> bool:
        """Whether the credentials see all of XO (an admin's): True or False as XO says
        now, never from a cache; InventoryError when XO cannot tell. A token that sees
        only what ACLs allow gets 404 for VMs it may not see, as for deleted ones."""
        ...


class Snapshots(Protocol):
    """Where a pass gets its snapshot of XO: shared while recent, always with when it
    was observed (``domain.freshness``), so whoever writes from it can tell its age."""

    async def take(self) -> ObservedSnapshot:
        """All VMs, hosts and pools, and the observation they carry."""
        ...


class NodeStore(Protocol):
    """The Kubernetes Nodes, as far as the CCM reads and writes them."""

    async def get(self, *, name: str) -> Node | None:
        """The Node (from a cache when the adapter has one), or None."""
        ...

    async def list(self) -> Sequence[Node]:
        """Every Node."""
        ...

    async def update(self, *, node: Node, change: NodeChange) -> Node:
        """Write ``change`` onto ``node`` in one request, guarded by its resourceVersion.

        Raises ConflictError if the Node changed since ``node`` was read,
        NodeGoneError if it no longer exists. Setting a providerID on a Node
        that already has a different one is refused (InvalidNodeError).
        """
        ...

    async def set_addresses(self, *, node: Node, addresses: Sequence[NodeAddress]) -> Node:
        """Replace ``status.addresses``."""
        ...

    async def delete(self, *, node: Node) -> None:
        """Delete the Node, only if it still has ``node.uid`` (NodeGoneError otherwise)."""
        ...

    def watch(self) -> AsyncIterator[Node]:
        """Every Node once, then every Node that is added or changed."""
        ...

    def removals(self) -> AsyncIterator[Node]:
        """Every Node deleted from now on, by anyone, as last seen (so state kept
        about a node can leave with it)."""
        ...


class DeletionBreakerStore(Protocol):
    """Where the deletion breaker's state outlives the process: in the cluster, so a
    restart or a new leader goes on counting where the last one stopped."""

    async def load(self) -> StoredBreaker:
        """The stored state and its version; ``ARMED`` with version ``""`` when it was
        never written. BreakerStoreError when it cannot be read or does not parse
        (never an armed breaker in its place)."""
        ...

    async def save(self, *, state: BreakerState, version: str) -> StoredBreaker:
        """Store ``state`` if the stored one still has ``version`` (``""``: none is
        stored yet); the new state and version. BreakerConflictError when someone
        else wrote meanwhile, BreakerStoreError when the write failed."""
        ...


class CertificateRequests(Protocol):
    """Kubelet serving certificate requests (certificates.k8s.io/v1 CSRs of the
    ``kubernetes.io/kubelet-serving`` signer), as far as the CSR approver needs them."""

    async def get(self, *, name: str) -> CertificateRequest | None:
        """The CSR (from a cache when the adapter has one), or None."""
        ...

    def watch(self) -> AsyncIterator[str]:
        """The name of every CSR once, then of every CSR added, changed or deleted."""
        ...

    async def approve(self, *, request: CertificateRequest, reason: str, message: str) -> bool:
        """Add the ``Approved`` condition to ``request`` (that very CSR: its uid) if it is
        still pending; True when this call approved it, False when it was no longer
        pending (approved, denied or failed meanwhile). CertificateRequestGoneError when
        it no longer exists, CertificateRequestConflictError when it changed meanwhile,
        CertificateRequestError when the write failed. Never denies."""
        ...


class EventRecorder(Protocol):
    """Kubernetes events about Nodes."""

    async def record(
        self, *, node: Node, type: EventType, reason: str, message: str, source: str
    ) -> None:
        """Record an event; never raises (events are best effort)."""
        ...


class Clock(Protocol):
    """Time, so controllers can run on a fake clock in tests."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def now(self) -> datetime:
        """The wall-clock time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class LeaderElector(Protocol):
    """Who leads: controllers only run on the replica that holds the lease."""

    async def acquire(self) -> None:
        """Return once this replica leads (blocks while another one does)."""
        ...

    async def lost(self) -> None:
        """Return when leadership is lost (could not renew, or revoked)."""
        ...

    async def release(self) -> None:
        """Give leadership up (on clean shutdown), so another replica takes over at once."""
        ...


class Metrics(Protocol):
    """What the controllers measure; adapters export it (Prometheus) or keep it (tests)."""

    def queue_added(self, *, queue: str) -> None: ...

    def queue_retried(self, *, queue: str) -> None: ...

    def queue_depth(self, *, queue: str, depth: int) -> None: ...

    def queue_work_duration(self, *, queue: str, seconds: float) -> None: ...

    def queue_waited(self, *, queue: str, seconds: float) -> None:
        """How long a key stayed queued before a worker took it."""
        ...

    def queue_in_progress(self, *, queue: str, probe: Callable[[], tuple[float, float]]) -> None:
        """``probe`` says, when metrics are read, the seconds of work in progress not
        yet observed as work duration and how long the longest of it has run."""
        ...

    def controllers_running(self, *, names: Sequence[str], running: bool) -> None:
        """The controllers this replica runs (started when it leads, stopped after)."""
        ...

    def node_synced(self, *, controller: str, result: str) -> None: ...

    def taint_removal_delay(self, *, seconds: float) -> None: ...

    def initial_sync_delay(self, *, seconds: float) -> None: ...

    def leader(self, *, is_leader: bool) -> None: ...

    def declare_node_syncs(self, *, controller: str, results: Sequence[str]) -> None:
        """The results ``controller`` may report to ``node_synced``, so each series
        exists (at 0) before its first sync: alerts and dashboards can rely on it."""
        ...

    def nodes_waiting_initialization(
        self, *, count: int, oldest_created_at: datetime | None
    ) -> None:
        """Nodes still carrying the uninitialized taint, and the creation time of the
        oldest of them (None when there is none or it is unknown)."""
        ...

    def nodes_without_provider_id(self, *, count: int) -> None:
        """Nodes with neither a providerID nor the uninitialized taint: the CCM never
        initializes them (typically a kubelet without --cloud-provider=external)."""
        ...

    def node_deletion(self, *, outcome: str) -> None:
        """One deletion decided by the lifecycle controller: ``deleted``, ``refused``
        (the breaker), ``dry-run`` or ``failed``."""
        ...

    def deletion_breaker(self, *, tripped: bool, deletions_in_window: int, limit: int) -> None:
        """The deletion breaker's state after a lifecycle check."""
        ...
