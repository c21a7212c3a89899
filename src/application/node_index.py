"""Which Nodes a VM id can name: an index kept up to date as Nodes come and go.

The change router gets one XO event per VM change; scanning every Node for
each (the old way) cost 12 ms per event at 5,000 nodes, a minute of event
loop for a pool-loss burst. The index answers in O(1) per event, and costs
O(1) per Node added, changed or deleted. What a Node's VM ids are is the
domain's matching rule (``domain.matching.vm_id_candidates``), not this
module's.
"""

from __future__ import annotations

from domain.errors import ProviderIDError
from domain.matching import vm_id_candidates
from domain.model import Node


def node_vm_ids(node: Node) -> tuple[str, ...]:
    """The VM ids ``node`` may be matched with (none for an unparseable providerID)."""
    try:
        return vm_id_candidates(node)
    except ProviderIDError:
        return ()


class NodeIndex:
    """VM id -> names of the Nodes it may be, from :meth:`put` and :meth:`drop` calls."""

    def __init__(self) -> None:
        self._names: dict[str, set[str]] = {}
        #: each node's VM ids, and the providerID and systemUUID they were computed
        #: from: most changes of a Node (its status, labels, taints) leave both alone,
        #: and then nothing is recomputed
        self._vm_ids: dict[str, tuple[tuple[str, str], tuple[str, ...]]] = {}

    def put(self, node: Node) -> None:
        """``node`` was added or changed."""
        key = (node.provider_id, node.system_uuid)
        old = self._vm_ids.get(node.name)
        if old is not None and old[0] == key:
            return
        ids = node_vm_ids(node)
        self._vm_ids[node.name] = (key, ids)
        if old is not None and old[1] == ids:
            return
        if old is not None:
            self._unlink(node.name, old[1])
        for vm_id in ids:
            self._names.setdefault(vm_id, set()).add(node.name)

    def drop(self, name: str) -> None:
        """The Node ``name`` was deleted."""
        old = self._vm_ids.pop(name, None)
        if old is not None:
            self._unlink(name, old[1])

    def names(self, vm_id: str) -> list[str]:
        """The Nodes that may be ``vm_id``'s, sorted."""
        return sorted(self._names.get(vm_id, ()))

    def __len__(self) -> int:
        return len(self._vm_ids)

    def _unlink(self, name: str, ids: tuple[str, ...]) -> None:
        for vm_id in ids:
            names = self._names.get(vm_id)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._names[vm_id]
