"""The NodeStore port on a real API server: an informer-style cache plus patches.

Reads (``get``, ``list``, ``watch``) are answered from a list+watch cache, so a
sync pass over a thousand nodes costs no request at all, like client-go's
listers. Writes are single JSON merge patches built from the copy the caller
read and guarded by its resourceVersion; their responses go straight into
the cache, so the caller's next read sees its own write even before the
watch event arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from urllib.parse import quote

from loguru import logger

from adapters.kubernetes.client import MERGE_PATCH, KubeClient
from adapters.kubernetes.convert import addresses_patch, node_from_object, node_patch
from adapters.kubernetes.errors import ApiError
from adapters.kubernetes.reflector import Reflector
from adapters.kubernetes.wire import JsonObject
from domain.errors import ConflictError, InvalidNodeError, NodeGoneError, NodeStoreError
from domain.model import Node, NodeAddress, NodeChange

NODES = "/api/v1/nodes"
#: Uids of deleted Nodes remembered, so a late answer or event for one never brings
#: it back (uids are never reused; these matter for the seconds a request takes, and
#: a mass deletion handled meanwhile must not push them out: about 1 MiB when full).
GONE_UIDS_KEPT = 8192


def _revision(version: str) -> int | None:
    """The etcd revision a resourceVersion is in practice; None when it is not a number
    (opaque by contract): then nothing is concluded from comparing it."""
    try:
        return int(version)
    except ValueError:
        return None


def _newer_version(candidate: str, current: str) -> bool:
    old, new = _revision(current), _revision(candidate)
    return new > old if new is not None and old is not None else candidate != current


def _ordered(one: Node, other: Node) -> bool:
    """Whether the two versions can be ordered (both numbers): only then does the
    older of two uids of one name prove a deleted Node."""
    return _revision(one.resource_version) is not None and (
        _revision(other.resource_version) is not None
    )


def _is_newer(candidate: Node, current: Node) -> bool:
    """Whether ``candidate`` should replace ``current`` in the cache.

    resourceVersions are opaque by contract but integers (etcd revisions) in
    practice; comparing them keeps a late watch event or write answer from
    overwriting a newer copy. That holds across uids too: a Node created again
    under the name of a deleted one has a higher revision than anything written
    to the old one, so a late answer for the old Node never replaces it.
    """
    return _newer_version(candidate.resource_version, current.resource_version)


def _held(current: Node | None, uid: str, version: str) -> bool:
    """Whether ``current`` is that Node at ``version`` or newer."""
    return (
        current is not None
        and current.uid == uid
        and not _newer_version(version, current.resource_version)
    )


def _stale(obj: JsonObject, current: Node | None) -> bool:
    """Whether a watched object is one the cache already holds (or an older one):
    the echo of the CCM's own write, whose response the cache took already. Read
    from the raw object, so an echo costs no conversion."""
    meta = obj.get("metadata") or {}
    return _held(current, str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))


def _readable(obj: JsonObject) -> Node | None:
    """The Node, or None (logged) for an object no controller could act on: one odd
    object must not keep the cache from syncing for every other Node."""
    try:
        return node_from_object(obj)
    except InvalidNodeError as err:
        logger.error("node cache: skipping {}", err)
        return None


class KubernetesNodeStore:
    """Implements ``domain.ports.NodeStore`` against kube-apiserver.

    Call ``start()`` (or use ``async with``), then ``wait_synced()`` before
    relying on reads; ``synced`` is what the readiness probe reports. Reads
    wait for the first sync. The cache holds lean domain ``Node`` values.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        page_size: int = 500,
        watch_timeout: float = 300.0,
        resync_period: float = 0.0,
    ) -> None:
        self._client = client
        #: ``--min-resync-period``: every cached Node is handed to the watchers
        #: again after a random time in [p, 2p), as a shared informer resyncs.
        self.resync_period = resync_period
        self._resync_task: asyncio.Task[None] | None = None
        self._nodes: dict[str, Node] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._watchers: set[asyncio.Queue[Node]] = set()
        self._removal_watchers: set[asyncio.Queue[Node]] = set()
        self.reflector: Reflector[Node] = Reflector(
            client,
            path=NODES,
            convert=_readable,
            on_sync=self._replace,
            on_event=self._on_event,
            known=self._holds,
            page_size=page_size,
            watch_timeout=watch_timeout,
        )

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        """Start listing and watching (returns at once; see ``wait_synced``)."""
        self.reflector.start(name="kube-node-reflector")
        if self._resync_task is None and self.resync_period > 0:
            self._resync_task = asyncio.create_task(self._resync(), name="kube-node-resync")

    async def stop(self) -> None:
        """Stop watching; the cache keeps its last state."""
        await self.reflector.stop()
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync_task
        self._resync_task = None

    async def __aenter__(self) -> KubernetesNodeStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def synced(self) -> bool:
        """True once the first list has filled the cache."""
        return self.reflector.synced

    async def wait_synced(self) -> None:
        """Return once the cache holds a full list (bound it with ``asyncio.timeout``)."""
        if not self.reflector.synced and not self.reflector.started:
            raise NodeStoreError("node store not started: call start() first")
        await self.reflector.wait_synced()

    # -- the cache --------------------------------------------------------
    def _store(self, node: Node) -> Node:
        """Cache ``node`` unless it is older than the cached Node of its name or its uid
        was deleted; the Node returned is ``node``'s own (the cached copy when that is
        the same Node, newer). Two Nodes of a name never live at once, so of two uids
        the older revision is a deleted Node."""
        current = self._nodes.get(node.name)
        if node.uid in self._gone:
            return node
        if current is not None:
            if not _is_newer(node, current):
                if current.uid == node.uid:
                    return current
                if _ordered(node, current):
                    self._bury(node.uid)
                return node
            if current.uid != node.uid:  # told by a list or a read, not the watch
                self._drop(node.name, bury=_ordered(node, current))
        self._nodes[node.name] = node
        for queue in self._watchers:
            queue.put_nowait(node)
        return node

    def _bury(self, uid: str) -> None:
        """``uid`` was deleted: no answer or event of it is cached from now on."""
        if uid:
            self._gone[uid] = None
            if len(self._gone) > GONE_UIDS_KEPT:
                self._gone.popitem(last=False)

    async def _resync(self) -> None:
        await self.reflector.wait_synced()
        while True:
            await asyncio.sleep(self.resync_period * random.uniform(1.0, 2.0))
            self.resync()

    def resync(self) -> None:
        """Hand every cached Node to the watchers again (no API call)."""
        for node in list(self._nodes.values()):
            for queue in self._watchers:
                queue.put_nowait(node)

    def _forget(self, name: str, uid: str) -> None:
        """Node ``name`` with ``uid`` was deleted: out of the cache, if it is the one there."""
        self._bury(uid)
        current = self._nodes.get(name)
        if current is not None and current.uid == uid:
            self._drop(name)

    def _drop(self, name: str, *, bury: bool = True) -> None:
        gone = self._nodes.pop(name)
        if bury:
            self._bury(gone.uid)
        for queue in self._removal_watchers:
            queue.put_nowait(gone)

    def _replace(self, nodes: Sequence[Node]) -> None:
        """A (re-)list: what it lacks was deleted while the watch was down, unless the
        cache got it after the list was answered (a write's answer or refresh)."""
        listed = _revision(self.reflector.resource_version)
        names = {node.name for node in nodes}
        for name, node in list(self._nodes.items()):
            if name in names:
                continue
            cached = _revision(node.resource_version)
            if listed is None or cached is None:
                self._drop(name, bury=False)  # no order to read: the list says, the watch next
            elif cached <= listed:
                self._drop(name)
        for node in nodes:
            self._store(node)
        if not self.reflector.synced:
            logger.info("node cache synced ({} nodes)", len(nodes))

    def _holds(self, name: str, uid: str, version: str) -> bool:
        """Whether the cache holds that version of the Node (or a newer one): the watch
        then skips its event undecoded."""
        return _held(self._nodes.get(name), uid, version)

    def _on_event(self, kind: str, obj: JsonObject) -> None:
        meta = obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if kind != "DELETED" and isinstance(name, str) and _stale(obj, self._nodes.get(name)):
            return
        node = _readable(obj)
        if node is None:
            return
        if kind == "DELETED":
            self._forget(node.name, node.uid)
        else:
            self._store(node)

    # -- reads ------------------------------------------------------------
    async def get(self, *, name: str) -> Node | None:
        await self.wait_synced()
        return self._nodes.get(name)

    async def list(self) -> Sequence[Node]:
        await self.wait_synced()
        return list(self._nodes.values())

    async def removals(self) -> AsyncIterator[Node]:
        """Every Node that leaves the cache from now on (a watch ``DELETED``, a
        re-list without it, or a write that found it gone), as last cached."""
        queue: asyncio.Queue[Node] = asyncio.Queue()
        self._removal_watchers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._removal_watchers.discard(queue)

    async def watch(self) -> AsyncIterator[Node]:
        """Every cached Node, then every Node added or changed (deletions: see
        :meth:`removals`)."""
        await self.wait_synced()
        queue: asyncio.Queue[Node] = asyncio.Queue()
        self._watchers.add(queue)  # subscribe and snapshot with no await in between
        snapshot = list(self._nodes.values())
        try:
            for node in snapshot:
                yield node
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    # -- writes -----------------------------------------------------------
    async def update(self, *, node: Node, change: NodeChange) -> Node:
        patch = node_patch(node, change)
        if patch is None:
            return node
        path = f"{NODES}/{quote(node.name, safe='')}"
        try:
            obj = await self._client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except ApiError as err:
            raise await self._translate(err, node) from None
        return self._written(obj)

    async def set_addresses(self, *, node: Node, addresses: Sequence[NodeAddress]) -> Node:
        current = self._nodes.get(node.name)
        base = current if current is not None and current.uid == node.uid else node
        patch = addresses_patch(base, addresses)
        if patch is None:
            return base
        path = f"{NODES}/{quote(node.name, safe='')}/status"
        try:
            obj = await self._client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except ApiError as err:
            raise await self._translate(err, node) from None
        return self._written(obj)

    def _written(self, obj: JsonObject) -> Node:
        """The Node a write answered, cached unless the cache holds a newer copy. When
        the watch brought that version (or a newer one) first, the cached copy is the
        answer: no second conversion. Never another Node of that name: what the caller
        goes on writing is for the Node it wrote."""
        meta = obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        cached = self._nodes.get(name) if isinstance(name, str) else None
        if cached is not None and _stale(obj, cached):
            return cached
        return self._store(node_from_object(obj))

    async def delete(self, *, node: Node) -> None:
        body: JsonObject | None = None
        if node.uid:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": node.uid}}
        path = f"{NODES}/{quote(node.name, safe='')}"
        try:
            answer = await self._client.request("DELETE", path, body=body)
        except ApiError as err:
            if err.not_found or err.status == 409:
                self._forget(node.name, node.uid)
                raise NodeGoneError(f"node {node.name} (uid {node.uid or '-'}) is gone") from None
            raise NodeStoreError(f"node {node.name}: delete failed: {err}") from None
        meta = answer.get("metadata") if isinstance(answer, dict) else None
        if isinstance(meta, dict) and meta.get("finalizers"):
            return  # still there until its finalizers are done: the watch says when it goes
        self._forget(node.name, node.uid)

    async def _translate(self, err: ApiError, node: Node) -> Exception:
        if err.not_found:
            self._forget(node.name, node.uid)
            return NodeGoneError(f"node {node.name} not found")
        # The status write's uid precondition (an immutable field it names) proves
        # the Node was made again; a version conflict is read again to tell.
        replaced = err.invalid and "metadata.uid" in err.message
        if err.conflict or replaced:
            await self._refresh(node.name, node.uid)
            now = self._nodes.get(node.name)
            if replaced or now is None or now.uid != node.uid:
                self._forget(node.name, node.uid)
                made = (
                    f"; the Node of that name now has uid {now.uid}"
                    if now is not None and now.uid != node.uid
                    else ""
                )
                return NodeGoneError(f"node {node.name} (uid {node.uid or '-'}) was deleted{made}")
            return ConflictError(
                f"node {node.name}: {err.message or 'the object has been modified'}"
            )
        if err.invalid and "providerID" in err.message:
            return InvalidNodeError(f"node {node.name}: {err.message}")
        return NodeStoreError(f"node {node.name}: {err}")

    async def _refresh(self, name: str, uid: str) -> None:
        """After a conflict, read the Node now so the caller's re-read is fresh (the
        watch may not have delivered the newer version yet). "Not found" says the
        writer's ``uid`` and the one cached before the read are gone, not one the
        watch brought while the answer travelled."""
        before = self._nodes.get(name)
        try:
            obj = await self._client.request("GET", f"{NODES}/{quote(name, safe='')}")
        except ApiError as err:
            if err.not_found:
                self._forget(name, uid)
                if before is not None:
                    self._forget(name, before.uid)
            else:
                logger.debug("node {}: refresh after conflict failed: {}", name, err)
            return
        self._store(node_from_object(obj))
