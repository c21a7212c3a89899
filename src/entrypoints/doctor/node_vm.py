"""A node's VM and what cloud-node-lifecycle does about it, from one snapshot.

A VM missing from the snapshot is judged as the lifecycle controller judges
it (``domain.matching.absence_verdict``): deleted only when every pool the
node was placed in is known.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain import labels
from domain.errors import (
    VMDeletedError,
)
from domain.matching import (
    MatchedBy,
    SnapshotMatch,
    system_uuid_candidates,
)
from domain.model import VM, Node
from domain.options import CCMOptions
from domain.policies.lifecycle import LifecycleAction, VMState, decide, is_down, state_of
from domain.providerid import ProviderID
from entrypoints.doctor.findings import NODE_LIFECYCLE, NODE_VM, Finding, fail, ok, warn
from entrypoints.doctor.texts import IMMUTABLE_FIX, POOL_FIX


def describe_vm(vm: VM) -> str:
    return f"VM {vm.name_label} ({vm.id}), {vm.power_state.value}"


def vm_state(lookup: SnapshotMatch) -> VMState:
    """What the lifecycle controller would conclude from this lookup."""
    if lookup.vm is not None:
        return state_of(lookup.vm)
    if isinstance(lookup.verdict, VMDeletedError):
        return VMState.DELETED
    return VMState.POOL_UNKNOWN


def pools_phrase(pools: Iterable[str]) -> str:
    """``pool X`` or ``pools X, Y``."""
    names = sorted(pools)
    return f"pool {names[0]}" if len(names) == 1 else f"pools {', '.join(names)}"


def vm_findings(
    node: Node, pid: ProviderID | None, lookup: SnapshotMatch, options: CCMOptions
) -> list[Finding]:
    name = node.name
    vm = lookup.vm
    if vm is not None:
        out: list[Finding] = []
        how = lookup.matched_by
        if how is MatchedBy.SYSTEM_UUID_SWAPPED:
            out.append(
                ok(
                    NODE_VM,
                    name,
                    f"{describe_vm(vm)}, found by the little-endian form of systemUUID "
                    f"{node.system_uuid} (a UEFI guest): the CCM finds it the same way",
                )
            )
        elif how is MatchedBy.NAME_LABEL:
            out.append(ok(NODE_VM, name, f"{describe_vm(vm)}, found by name (matchByName)"))
        elif how is MatchedBy.SYSTEM_UUID:
            out.append(ok(NODE_VM, name, f"{describe_vm(vm)}, found by systemUUID"))
        else:
            twins = system_uuid_candidates(node.system_uuid)
            if twins and vm.id.lower() not in twins:
                out.append(
                    warn(
                        NODE_VM,
                        name,
                        f"providerID names {describe_vm(vm)}, but kubelet reports systemUUID "
                        f"{twins[0]}, neither that VM's id nor its little-endian form: this Node "
                        "object was registered by another VM (cloned or re-created?)",
                        IMMUTABLE_FIX.format(name=name),
                    )
                )
            else:
                out.append(ok(NODE_VM, name, describe_vm(vm), routine=True))
        out.extend(lifecycle_findings(node, lookup, options))
        return out

    if pid is None:
        if lookup.ambiguous:
            return [
                fail(
                    NODE_VM,
                    name,
                    f"{len(lookup.ambiguous)} VMs are named {name!r} "
                    f"({', '.join(lookup.ambiguous)}): the CCM refuses to guess",
                    "give the VMs unique names in XO, or make systemUUID the VM's uuid",
                )
            ]
        tried = ", ".join(lookup.tried) if lookup.tried else "no valid systemUUID"
        by_name = "" if options.match_by_name else "; or set matchByName: true in the cloud config"
        return [
            fail(
                NODE_VM,
                name,
                f"no VM found in XO ({tried}): the CCM cannot initialize this node",
                "kubelet's systemUUID (/sys/class/dmi/id/product_uuid) must be the VM's uuid "
                f"in XO: check the VM exists and the token can see it{by_name}",
            )
        ]

    if not node.ready:
        return lifecycle_findings(node, lookup, options)
    if not lookup.pools:
        return [
            fail(
                NODE_VM,
                name,
                f"VM {pid.vm_id} not found in XO, and no pool to tell a deletion from an "
                "outage: the CCM keeps this node",
                "check the VM in XO; if it is gone for good, delete the node",
            )
        ]
    if lookup.unknown_pools:
        return [
            fail(
                NODE_VM,
                name,
                f"protected: VM {pid.vm_id} and its {pools_phrase(lookup.unknown_pools)} are "
                "unknown to XO (pool disconnected, or its VMs not loaded?): the CCM does not treat "
                "the VM as deleted",
                POOL_FIX,
            )
        ]
    return [
        fail(
            NODE_VM,
            name,
            f"VM {pid.vm_id} is gone from {pools_phrase(lookup.pools)}, yet the node is Ready: "
            "kubelet runs on another machine than the providerID says",
            IMMUTABLE_FIX.format(name=name),
        )
    ]


def lifecycle_findings(node: Node, lookup: SnapshotMatch, options: CCMOptions) -> list[Finding]:
    """What cloud-node-lifecycle does with a NotReady node of ours."""
    if node.ready:
        return []
    name = node.name
    state = vm_state(lookup)
    action = decide(node=node, vm_state=state)
    readiness = f"NotReady ({node.readiness.value})"
    if action is LifecycleAction.DELETE_NODE:
        vm_id = lookup.tried[0] if lookup.tried else "?"
        return [
            warn(
                NODE_LIFECYCLE,
                name,
                f"{readiness} and its VM {vm_id} is gone while {pools_phrase(lookup.pools)} "
                f"{'is' if len(lookup.pools) == 1 else 'are'} known: "
                "cloud-node-lifecycle will delete this node (once it has seen the VM gone "
                f"twice, {options.deletion.confirm_delay:g}s apart)",
                "nothing, if the VM was deleted on purpose; otherwise restore it in XO now",
            )
        ]
    if state is VMState.POOL_UNKNOWN:
        if not lookup.pools:
            return [
                fail(
                    NODE_LIFECYCLE,
                    name,
                    f"{readiness}, VM {lookup.tried[0] if lookup.tried else '?'} not found and "
                    "no pool to confirm a deletion with: the CCM keeps the node",
                    "check the VM in XO; if it is gone for good, delete the node",
                )
            ]
        return [
            fail(
                NODE_LIFECYCLE,
                name,
                f"{readiness}, protected: VM {lookup.tried[0] if lookup.tried else '?'} and its "
                f"{pools_phrase(lookup.unknown_pools)} are unknown to XO (pool disconnected, or "
                "its VMs not loaded?), so cloud-node-lifecycle keeps the node",
                POOL_FIX,
            )
        ]
    vm = lookup.vm
    if is_down(state) and vm is not None:
        taint = labels.SHUTDOWN_TAINT.key
        what = (
            f"carries the {taint} taint"
            if action is LifecycleAction.NOTHING
            else f"will get the {taint} taint"
        )
        return [
            warn(
                NODE_LIFECYCLE,
                name,
                f"{readiness}: its VM is {vm.power_state.value}, the node {what}",
                "start the VM in XO, or delete the node if it is decommissioned",
            )
        ]
    return [
        warn(
            NODE_LIFECYCLE,
            name,
            f"{readiness} although its VM runs: a kubelet or network problem on the VM, "
            "not the CCM's",
            "check kubelet on the VM (systemctl status kubelet; journalctl -u kubelet)",
        )
    ]
