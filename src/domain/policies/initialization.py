"""The plan for a Node that carries the uninitialized taint, and the beta->GA
label copy for Nodes that do not."""

from __future__ import annotations

from dataclasses import dataclass

from domain import labels
from domain.model import InstanceMetadata, Node, NodeAddress, NodeChange
from domain.policies.addresses import missing_provided_ips, provided_node_ips
from domain.policies.tags import plan_tag_change


@dataclass(frozen=True, slots=True)
class InitPlan:
    """One Node update, then the addresses; ``wait_reason`` set means: requeue, write nothing."""

    change: NodeChange
    addresses: tuple[NodeAddress, ...]
    wait_reason: str = ""


def plan_initialization(*, node: Node, metadata: InstanceMetadata) -> InitPlan:
    """What initializing ``node`` with ``metadata`` writes.

    - every kubelet-provided IP must be among the IPs the VM reports, or the
      node waits (initializing with the wrong addresses cannot be undone cleanly);
    - ``spec.providerID`` only when empty (it is immutable);
    - instance type, zone and region labels (GA and beta) when known;
    - additional labels only where the node has none of that key, and never in
      the ``kubernetes.io``/``k8s.io`` namespaces;
    - labels and taints from the VM's tags (see ``domain.policies.tags``);
    - the uninitialized taint removed.
    """
    provided = provided_node_ips(node.annotations)
    missing = missing_provided_ips(provided_ips=provided, reported=metadata.reported_ips)
    if missing:
        return InitPlan(
            change=NodeChange(),
            addresses=(),
            wait_reason=(
                f"provided node IP(s) {', '.join(missing)} not among the VM's addresses "
                f"({', '.join(sorted(metadata.reported_ips))})"
            ),
        )

    wanted: dict[str, str] = {}
    for key, value in metadata.additional_labels.items():
        if key not in node.labels and not labels.in_kubernetes_namespace(key):
            wanted[key] = value
    for keys, value in (
        ((labels.INSTANCE_TYPE, labels.INSTANCE_TYPE_BETA), metadata.instance_type),
        ((labels.ZONE, labels.ZONE_BETA), metadata.zone),
        ((labels.REGION, labels.REGION_BETA), metadata.region),
    ):
        if value:
            wanted.update(dict.fromkeys(keys, value))
    set_labels = {k: v for k, v in wanted.items() if node.labels.get(k) != v}

    change = NodeChange(
        provider_id=None if node.provider_id else metadata.provider_id,
        set_labels=set_labels,
        remove_taint_keys=frozenset({labels.UNINITIALIZED_TAINT_KEY}),
    )
    return InitPlan(
        change=change.merge(tag_change(node, metadata, with_taints=True)),
        addresses=metadata.addresses,
    )


def tag_change(node: Node, metadata: InstanceMetadata, *, with_taints: bool) -> NodeChange:
    """The edit that makes the node's tag labels (and taints) match the VM's tags."""
    set_labels, remove_labels, add, remove, annotations = plan_tag_change(
        node_labels=node.labels,
        node_taints=node.taints,
        annotations=node.annotations,
        wanted_labels=metadata.tag_labels,
        wanted_taints=metadata.tag_taints if with_taints else None,
    )
    return NodeChange(
        set_labels=set_labels,
        remove_labels=remove_labels,
        add_taints=add,
        remove_taints=remove,
        set_annotations=annotations,
    )


def plan_beta_to_ga(node: Node) -> NodeChange:
    """For an initialized node: copy each beta label to its GA twin where they differ."""
    set_labels = {
        ga: node.labels[beta]
        for beta, ga in labels.BETA_TO_GA
        if beta in node.labels and node.labels.get(ga) != node.labels[beta]
    }
    return NodeChange(set_labels=set_labels)


def needs_registration(node: Node) -> bool:
    """Whether the cloud-node controller has anything to do for ``node``: initialize it
    (the uninitialized taint) or copy a beta label to its GA twin. Every other update
    of a Node (kubelet's status, the CCM's own writes) needs nothing, so the watch does
    not queue it (the sync would only find that out at more cost)."""
    return node.has_taint(labels.UNINITIALIZED_TAINT_KEY) or not plan_beta_to_ga(node).empty
