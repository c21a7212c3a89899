"""Every node against one XO snapshot: providerID, VM, initialization, labels, tags.

The checks follow the controllers' own rules (``domain.matching`` finds the
VM, ``domain.policies`` plan what the controllers would write), so "what the
CCM would do" is computed by the very code the CCM runs; no per-node request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from domain import labels
from domain.errors import (
    ProviderIDError,
)
from domain.matching import (
    SnapshotMatch,
    VMIndex,
    locate_in_snapshot,
    placement_pools,
)
from domain.model import Host, InventorySnapshot, Node, NodeChange, Pool
from domain.options import CCMOptions
from domain.policies.initialization import plan_initialization
from domain.policies.label_sync import plan_label_sync
from domain.policies.metadata import instance_metadata
from domain.providerid import PREFIX, ProviderID, is_ours
from entrypoints.doctor.findings import (
    NODE_INIT,
    NODE_LABELS,
    NODE_PROVIDER_ID,
    NODE_TAGS,
    NODE_VM,
    Finding,
    fail,
    format_age,
    ok,
    plural,
    warn,
)
from entrypoints.doctor.node_vm import describe_vm, vm_findings
from entrypoints.doctor.texts import IMMUTABLE_FIX, KUBELET_FIX

DEFAULT_OPTIONS = CCMOptions()


#: How long a node may carry the uninitialized taint before doctor calls it stuck.
DEFAULT_UNINITIALIZED_GRACE = 120.0


def find_vm(node: Node, index: VMIndex, *, match_by_name: bool = False) -> SnapshotMatch:
    """The node's VM in one snapshot, by the CCM's own rule (``domain.matching``).

    A foreign providerID is looked up by systemUUID too, only to tell the
    operator whether the node is an XO VM after all. A malformed providerID
    of ours finds nothing (:func:`diagnose_node` names the problem).
    """
    if node.provider_id and not is_ours(node.provider_id):
        return locate_in_snapshot(replace(node, provider_id=""), index, match_by_name=False)
    return locate_in_snapshot(node, index, match_by_name=match_by_name)


def node_age(node: Node, now: datetime) -> float | None:
    return None if node.created_at is None else (now - node.created_at).total_seconds()


def diagnose_node(
    *,
    node: Node,
    lookup: SnapshotMatch | None,
    host: Host | None = None,
    pool: Pool | None = None,
    now: datetime,
    options: CCMOptions = DEFAULT_OPTIONS,
    uninitialized_grace: float = DEFAULT_UNINITIALIZED_GRACE,
) -> list[Finding]:
    """Every finding about one node.

    ``lookup`` is None when XO could not be read: only what the Node object
    alone tells is checked then. ``host`` and ``pool`` are the VM's, from
    the same snapshot.
    """
    name = node.name
    tainted = node.has_taint(labels.UNINITIALIZED_TAINT_KEY)
    found: list[Finding] = []

    # -- providerID ----------------------------------------------------------------
    pid: ProviderID | None = None
    if not node.provider_id:
        if tainted:
            found.append(
                ok(NODE_PROVIDER_ID, name, "not set yet: the CCM sets it when it initializes")
            )
        else:
            found.append(
                fail(
                    NODE_PROVIDER_ID,
                    name,
                    "neither a providerID nor the uninitialized taint: kubelet probably runs "
                    "without --cloud-provider=external, so the CCM will never initialize "
                    "this node",
                    KUBELET_FIX.format(name=name),
                )
            )
    elif not is_ours(node.provider_id):
        vm = lookup.vm if lookup else None
        if vm is not None:
            found.append(
                fail(
                    NODE_PROVIDER_ID,
                    name,
                    f"providerID {node.provider_id!r} is another provider's, yet the node is "
                    f"{describe_vm(vm)}: the CCM ignores it (no labels, never deleted)",
                    IMMUTABLE_FIX.format(name=name),
                )
            )
        else:
            found.append(
                warn(
                    NODE_PROVIDER_ID,
                    name,
                    f"providerID {node.provider_id!r} is not ours ({PREFIX}...): the CCM "
                    "ignores this node",
                    "nothing, if this node is not an XO VM; otherwise "
                    + IMMUTABLE_FIX.format(name=name),
                )
            )
        return found
    else:
        try:
            pid = ProviderID.parse(node.provider_id)
        except ProviderIDError as err:
            found.append(
                fail(
                    NODE_PROVIDER_ID,
                    name,
                    f"{err}: the CCM cannot find its VM",
                    IMMUTABLE_FIX.format(name=name),
                )
            )
            return found
        found.append(ok(NODE_PROVIDER_ID, name, node.provider_id, routine=True))

    vm = lookup.vm if lookup else None
    metadata = (
        instance_metadata(vm=vm, host=host, pool=pool, node=node, options=options)
        if vm is not None
        else None
    )

    # -- the VM ------------------------------------------------------------------------
    if lookup is not None:
        found.extend(vm_findings(node, pid, lookup, options))

    # -- initialization --------------------------------------------------------------
    if tainted:
        age = node_age(node, now)
        since = f"uninitialized for {format_age(age)}" if age is not None else "uninitialized"
        blocker, fix = "", ""
        if lookup is not None and vm is None:
            blocker, fix = "no VM found for it (see node.vm)", "fix what node.vm says"
        elif metadata is not None:
            wait = plan_initialization(node=node, metadata=metadata).wait_reason
            if wait:
                blocker = wait
                fix = (
                    "kubelet's --node-ip must be among the addresses XO reports for the VM "
                    "(guest tools must run): fix --node-ip or the VM's network"
                )
        if blocker:
            found.append(fail(NODE_INIT, name, f"{since}: {blocker}", fix))
        elif age is not None and age >= uninitialized_grace:
            cause = (
                "although its VM is found: the CCM is not initializing nodes"
                if vm is not None
                else "the CCM is not initializing it"
            )
            found.append(
                fail(
                    NODE_INIT,
                    name,
                    f"{since} {cause}",
                    "check the CCM runs and leads (kube.lease), with the cloud-node "
                    "controller enabled (--controllers), and read its logs",
                )
            )
        else:
            found.append(ok(NODE_INIT, name, f"{since}: being initialized"))

    if pid is None or vm is None or metadata is None:
        return found

    # -- labels (what cloud-node-label-sync would write) -------------------------------
    if not tainted:
        plan = plan_label_sync(
            node=node,
            metadata=metadata,
            sync_taints=options.tags.sync_taints,
            topology=options.topology,
        )
        change = plan.change
        if change.empty:
            found.append(ok(NODE_LABELS, name, "labels match XO", routine=True))
        else:
            found.append(
                warn(
                    NODE_LABELS,
                    name,
                    f"differ from XO: {_label_diff(node, change)}",
                    "cloud-node-label-sync writes these every --node-status-update-frequency "
                    "(default 5m); if they stay, check the CCM runs that controller "
                    "(--controllers) and read its logs",
                )
            )
    for tag, why in metadata.invalid_tags:
        found.append(
            warn(
                NODE_TAGS,
                name,
                f"VM tag {tag!r} is ignored: {why}",
                f"correct or remove the tag on VM {vm.name_label} in XO",
            )
        )
    return found


#: Bookkeeping labels and beta twins, left out of a diff that already names their cause.
_QUIET_IN_DIFF = {
    labels.ORIGINAL_HOST_ID: "",
    labels.ORIGINAL_POOL_ID: "",
    labels.ZONE_BETA: labels.ZONE,
    labels.REGION_BETA: labels.REGION,
    labels.INSTANCE_TYPE_BETA: labels.INSTANCE_TYPE,
}


def _label_diff(node: Node, change: NodeChange) -> str:
    """``key: old -> new`` for each label (and tag taint) cloud-node-label-sync would change."""
    wanted = change.set_labels
    diffs = [
        f"{key}: {node.labels.get(key, '(none)')} -> {value}"
        for key, value in sorted(wanted.items())
        if key not in _QUIET_IN_DIFF
        or (_QUIET_IN_DIFF[key] and wanted.get(_QUIET_IN_DIFF[key]) != value)
    ]
    diffs += [f"{key}: {node.labels[key]} -> (removed)" for key in sorted(change.remove_labels)]
    diffs += [f"taint {t.key}:{t.effect.value} to add" for t in change.add_taints]
    diffs += [f"taint {t.key}:{t.effect.value} to remove" for t in change.remove_taints]
    return "; ".join(diffs) or "annotations only"


def diagnose_nodes(
    nodes: Sequence[Node],
    snapshot: InventorySnapshot | None,
    *,
    now: datetime,
    options: CCMOptions = DEFAULT_OPTIONS,
    uninitialized_grace: float = DEFAULT_UNINITIALIZED_GRACE,
    pools_without_vms: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Every node against one snapshot (None: XO could not be read): no per-node I/O.
    ``pools_without_vms``: pools XO holds without their VMs (a VM missing there is kept)."""
    found: list[Finding] = []
    index = VMIndex(snapshot, without_vms=pools_without_vms) if snapshot is not None else None
    for node in sorted(nodes, key=lambda n: n.name):
        lookup = (
            find_vm(node, index, match_by_name=options.match_by_name) if index is not None else None
        )
        vm = lookup.vm if lookup else None
        found.extend(
            diagnose_node(
                node=node,
                lookup=lookup,
                host=index.host(vm.container) if index and vm else None,
                pool=index.pool(vm.pool_id) if index and vm else None,
                now=now,
                options=options,
                uninitialized_grace=uninitialized_grace,
            )
        )
    if snapshot is None and nodes:
        found.append(
            warn(
                NODE_VM,
                plural(len(nodes), "node"),
                "not checked against XO (VMs, labels, lifecycle): XO could not be read, "
                "or not as an admin",
                "fix the XO findings above, then run doctor again",
            )
        )
    return found


def pools_of_missing_vms(nodes: Iterable[Node], snapshot: InventorySnapshot) -> set[str]:
    """The snapshot's pools that nodes of ours whose VM it lacks were placed in: the ones
    whose VMs XO may not hold (asked of XO only then: none when every VM is there)."""
    index = VMIndex(snapshot)
    known = {p.lower() for p in snapshot.pools}
    return {
        pool
        for node in nodes
        if is_ours(node.provider_id) and find_vm(node, index).vm is None
        for pool in placement_pools(node)
        if pool in known
    }


def ranked_placement_pools(nodes: Iterable[Node]) -> list[str]:
    """Pool ids the nodes of ours were placed in (``placement_pools``), most named first."""
    counts = Counter(
        p for node in nodes if is_ours(node.provider_id) for p in placement_pools(node)
    )
    return [pool_id for pool_id, _ in counts.most_common()]
