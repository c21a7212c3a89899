"""The label-sync diff: labels follow the VM after migrations, pool moves, resizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain import labels
from domain.model import EventType, InstanceMetadata, Node, NodeChange
from domain.policies.initialization import tag_change


@dataclass(frozen=True, slots=True)
class NodeEventSpec:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class LabelSyncPlan:
    change: NodeChange
    events: tuple[NodeEventSpec, ...]


#: Each name label and the id label it names.
_NAMED_BY = {labels.HOST_NAME_LABEL: labels.HOST_ID, labels.POOL_NAME_LABEL: labels.POOL_ID}


def _keeps_known_name(current: Mapping[str, str], key: str, metadata: InstanceMetadata) -> bool:
    """Whether ``key`` is a name XO could not be asked for this time (the placeholder)
    while the node already holds a name for that same host or pool: a failed lookup
    never replaces a known name (a new host or pool's name is still ``unknown``)."""
    if key not in metadata.unknown_names or key not in current:
        return False
    id_key = _NAMED_BY[key]
    return current.get(id_key) == metadata.additional_labels.get(id_key)


def plan_label_sync(
    *, node: Node, metadata: InstanceMetadata, sync_taints: bool = False
) -> LabelSyncPlan:
    """Labels to update on an initialized node, and the events that explain them.

    Only ``k8s.xenorchestra`` labels plus zone, region and instance type are
    touched; region and instance type only when the node already has them, and
    the zone also when it was missing (a VM halted at registration has none). The
    first zone/region a node had is kept once in ``original_*``. An empty
    zone (halted VM) never replaces a host. Tag labels follow the tags; tag
    taints only with ``sync_taints``.
    """
    if node.has_taint(labels.UNINITIALIZED_TAINT_KEY):
        return LabelSyncPlan(change=NodeChange(), events=())
    current = node.labels
    update = {
        key: value
        for key, value in metadata.additional_labels.items()
        if labels.XO_NAMESPACE in key
        and current.get(key) != value
        and not _keeps_known_name(current, key, metadata)
    }
    events: list[NodeEventSpec] = []

    old_zone = current.get(labels.ZONE)
    if old_zone is None and metadata.zone:
        # Initialized while its VM was halted (no host then): the zone appears
        # once the VM runs; nothing moved, so no original_* and no event.
        update[labels.ZONE] = update[labels.ZONE_BETA] = metadata.zone
    elif old_zone is not None and metadata.zone and old_zone != metadata.zone:
        if labels.ORIGINAL_HOST_ID not in current:
            update[labels.ORIGINAL_HOST_ID] = old_zone
        update[labels.ZONE] = update[labels.ZONE_BETA] = metadata.zone
        events.append(
            NodeEventSpec(
                EventType.WARNING,
                "NodeZoneChanged",
                f"Node {node.name} zone changed (node VM host changed): "
                f"old={old_zone}, new={metadata.zone}",
            )
        )

    old_region = current.get(labels.REGION)
    if old_region is not None and metadata.region and old_region != metadata.region:
        if labels.ORIGINAL_POOL_ID not in current:
            update[labels.ORIGINAL_POOL_ID] = old_region
        update[labels.REGION] = update[labels.REGION_BETA] = metadata.region
        events.append(
            NodeEventSpec(
                EventType.WARNING,
                "NodeRegionChanged",
                f"Node {node.name} region changed (node VM pool changed): "
                f"old={old_region}, new={metadata.region}",
            )
        )

    old_type = current.get(labels.INSTANCE_TYPE)
    if old_type is not None and metadata.instance_type and old_type != metadata.instance_type:
        update[labels.INSTANCE_TYPE] = update[labels.INSTANCE_TYPE_BETA] = metadata.instance_type
        events.append(
            NodeEventSpec(
                EventType.NORMAL,
                "NodeInstanceTypeHasChanged",
                f"Node {node.name} instance type has changed (node VM memory and/or CPUs "
                f"changed): old={old_type}, new={metadata.instance_type}",
            )
        )
    change = NodeChange(set_labels=update).merge(
        tag_change(node, metadata, with_taints=sync_taints)
    )
    return LabelSyncPlan(change=change, events=tuple(events))
