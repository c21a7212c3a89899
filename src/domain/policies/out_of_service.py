"""The out-of-service taint for nodes whose VM stays halted.

Kubernetes only detaches volumes from a shut-down node after 6 minutes,
unless the node carries ``node.kubernetes.io/out-of-service``; then
stateful pods move at once. The CCM adds it after a grace period and
removes the one it added when the node is back.

Whose taint it is, the annotation ``node.k8s.xenorchestra/out-of-service-taint``
says, written with the taint in one patch: Kubernetes' documentation has
operators add the very same taint (``nodeshutdown:NoExecute``) by hand to fail
a node over, and an operator's taint is never removed, whatever the VM's state,
the node's readiness or the feature's setting. The CCM adds none while the
node carries any out-of-service taint, and its own is removed even with the
feature off (it was added when it was on).

Only a **halted** VM qualifies: a paused or suspended guest still holds its
pods' state and its volumes' caches in memory; force-deleting its pods and
detaching its volumes would corrupt data once it resumes. Such a node keeps
the shutdown taint alone (its upstream meaning: not running).
"""

from __future__ import annotations

from domain.labels import OUT_OF_SERVICE_ADDED_BY
from domain.model import Node, NodeChange, Taint, TaintEffect
from domain.options import OutOfServiceOptions

OUT_OF_SERVICE = Taint(
    key="node.kubernetes.io/out-of-service", value="nodeshutdown", effect=TaintEffect.NO_EXECUTE
)
#: The annotation's value: who added the taint, for whoever reads the Node.
ADDED_BY_THIS_CCM = "xenorchestra-cloud-controller-manager"

_ADD = NodeChange(
    add_taints=(OUT_OF_SERVICE,), set_annotations={OUT_OF_SERVICE_ADDED_BY: ADDED_BY_THIS_CCM}
)
_REMOVE = NodeChange(
    remove_taints=(OUT_OF_SERVICE,), remove_annotations=frozenset({OUT_OF_SERVICE_ADDED_BY})
)
_FORGET = NodeChange(remove_annotations=frozenset({OUT_OF_SERVICE_ADDED_BY}))


def has_our_out_of_service(node: Node) -> bool:
    """Whether the node carries the out-of-service taint this CCM added."""
    return has_our_mark(node) and any(
        t.key == OUT_OF_SERVICE.key
        and t.effect is OUT_OF_SERVICE.effect
        and t.value == OUT_OF_SERVICE.value
        for t in node.taints
    )


def has_our_mark(node: Node) -> bool:
    """Whether the annotation is there, with or without the taint (someone removed
    it by hand): a mark left alone would make a taint added later by hand look ours."""
    return OUT_OF_SERVICE_ADDED_BY in node.annotations


def out_of_service_due(
    *, node: Node, halted_for: float | None, options: OutOfServiceOptions
) -> bool:
    """Whether the taint is to be added now, if XO's view of the VM's pool is current."""
    return (
        options.enabled
        and not node.ready
        and halted_for is not None
        and halted_for >= options.grace_period
        and not node.carries(OUT_OF_SERVICE)  # any value: an operator's too
    )


def plan_out_of_service(
    *,
    node: Node,
    halted_for: float | None,
    options: OutOfServiceOptions,
    vm_state_known: bool = True,
    pool_current: bool = True,
) -> NodeChange:
    """Add the taint once the VM has been halted ``grace_period``; remove ours when it is not.

    ``halted_for`` is how long the VM has been seen halted (None: it is not halted,
    paused and suspended included, or the node is Ready). ``vm_state_known`` False:
    XO said nothing about the VM (no answer, its pool lost), so nothing is added nor
    removed unless the node is Ready. ``pool_current`` False: XO's server of the VM's
    pool is not connected or shows an error (``domain.policies.xo_servers``), so
    "halted" may be the last state XO had before it stopped hearing from the pool
    (the VM may run since): not added. An out-of-service taint without this CCM's
    annotation is an operator's: never removed, and none is added beside it.
    """
    ours = has_our_out_of_service(node)
    if has_our_mark(node) and not ours:
        return _FORGET  # the taint was removed by hand: the mark goes with it
    if not vm_state_known and not node.ready:
        return NodeChange()
    if halted_for is None or node.ready:
        return _REMOVE if ours else NodeChange()
    if pool_current and out_of_service_due(node=node, halted_for=halted_for, options=options):
        return _ADD
    return NodeChange()
