"""What the lifecycle controller does with one Node."""

from __future__ import annotations

from enum import StrEnum

from domain import labels
from domain.model import VM, Node, PowerState
from domain.policies.out_of_service import has_our_mark


class VMState(StrEnum):
    """What XO said about a node's VM, as far as the lifecycle rules care."""

    RUNNING = "running"
    HALTED = "halted"  # powered off: nothing of the guest is left running or in memory
    SHUT_DOWN = "shut-down"  # paused or suspended: not running, but the guest's memory is kept
    DELETED = "deleted"  # gone while its pool is known: the only state that deletes
    POOL_UNKNOWN = "pool-unknown"  # gone with its pool: XO lost the pool, an outage
    LOOKUP_FAILED = "lookup-failed"  # XO did not answer: nothing is known
    NOT_OURS = "not-ours"  # empty or foreign providerID: exists, not shut down


#: what XO said tells nothing of the VM: the node is left exactly as it is
UNKNOWN_STATES = frozenset({VMState.POOL_UNKNOWN, VMState.LOOKUP_FAILED})


class LifecycleAction(StrEnum):
    NOTHING = "nothing"
    REMOVE_SHUTDOWN_TAINT = "remove-shutdown-taint"
    ADD_SHUTDOWN_TAINT = "add-shutdown-taint"
    DELETE_NODE = "delete-node"
    KEEP_UNCERTAIN = "keep-uncertain"  # log why the node is left alone
    # What the deletion guards turn DELETE_NODE into:
    WAIT_CONFIRMATION = "wait-deletion-confirmation"
    DELETION_RATE_LIMITED = "deletion-rate-limited"
    DELETION_BREAKER_UNKNOWN = "deletion-breaker-unknown"  # its state unreadable
    DRY_RUN_DELETE = "dry-run-delete"
    #: the VM is absent, but the credentials no longer see all of XO (or XO cannot say):
    #: an absence proves nothing then
    DELETION_UNVERIFIED = "deletion-unverified"


def state_of(vm: VM) -> VMState:
    """The lifecycle state of a VM XO reports."""
    if vm.power_state is PowerState.RUNNING:
        return VMState.RUNNING
    if vm.power_state is PowerState.HALTED:
        return VMState.HALTED
    return VMState.SHUT_DOWN


def is_down(state: VMState | None) -> bool:
    """Not running: the shutdown taint's condition (halted, paused or suspended)."""
    return state in (VMState.HALTED, VMState.SHUT_DOWN)


def needs_lookup(node: Node) -> bool:
    """Only not-ready nodes cost an XO request; ready ones only lose the shutdown taint."""
    return not node.ready


def needs_check(node: Node) -> bool:
    """Whether a periodic pass must look at the node at all.

    A Ready node without the shutdown taint or our out-of-service mark has
    nothing to lose or gain (:func:`decide` says NOTHING, the out-of-service
    rule removes nothing), so a pass over a healthy fleet costs nothing per
    node: only not-ready nodes and those carrying a taint of ours are visited.
    """
    return not node.ready or node.carries(labels.SHUTDOWN_TAINT) or has_our_mark(node)


def decide(*, node: Node, vm_state: VMState | None) -> LifecycleAction:
    """The lifecycle rule for one node (``vm_state`` is None for ready nodes).

    Ready: drop the shutdown taint if present. Not ready: delete only when
    the VM is *known* deleted, taint when it is shut down, and never act on
    an error or an unknown pool.
    """
    has_shutdown = node.carries(labels.SHUTDOWN_TAINT)
    if node.ready:
        return LifecycleAction.REMOVE_SHUTDOWN_TAINT if has_shutdown else LifecycleAction.NOTHING
    if vm_state is VMState.DELETED:
        return LifecycleAction.DELETE_NODE
    if is_down(vm_state):
        return LifecycleAction.NOTHING if has_shutdown else LifecycleAction.ADD_SHUTDOWN_TAINT
    if vm_state in UNKNOWN_STATES:
        return LifecycleAction.KEEP_UNCERTAIN
    return LifecycleAction.NOTHING
