"""The label-sync diff: labels follow the VM after migrations, pool moves, resizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain import labels
from domain.model import EventType, InstanceMetadata, Node, NodeChange, NodeEventSpec
from domain.options import RegionSource, TopologyOptions, ZoneSource
from domain.policies.initialization import tag_change

DEFAULT_TOPOLOGY = TopologyOptions()


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


def _moves(
    *, current: Mapping[str, str], id_key: str, old_value: str | None, by_id: bool, new_id: str
) -> tuple[str, bool]:
    """The node's previous host (or pool) and whether the VM left it for another.

    With the reference's sources the zone *is* the host and the region the pool, so
    the label itself says where the VM was; otherwise the id label does.
    """
    old = old_value if by_id else current.get(id_key)
    return old or "", bool(old and new_id and old != new_id)


def _zone_cause(options: TopologyOptions, moved: bool) -> str:
    if options.zone_source is ZoneSource.HOST or (
        moved and options.zone_source is ZoneSource.HOST_TAG
    ):
        return "node VM host changed"
    if options.zone_source is ZoneSource.HOST_TAG:
        return f"host tag {options.zone_tag} changed"
    return "node VM pool changed"


def _region_cause(options: TopologyOptions, moved: bool) -> str:
    if options.region_source is RegionSource.POOL_TAG and not moved:
        return f"pool tag {options.region_tag} changed"
    return "node VM pool changed"


def plan_label_sync(
    *,
    node: Node,
    metadata: InstanceMetadata,
    sync_taints: bool = False,
    topology: TopologyOptions = DEFAULT_TOPOLOGY,
) -> LabelSyncPlan:
    """Labels to update on an initialized node, and the events that explain them.

    Only ``k8s.xenorchestra`` labels plus zone, region and instance type are
    touched; region and instance type only when the node already has them (a region
    from a pool tag also once the tag appears), and the zone also when it was missing
    (a VM halted at registration, or a host tagged later, has none). An empty zone or
    region (a halted VM, a host or pool without a usable tag) never replaces one.
    A zone or region change is a Warning (``NodeZoneChanged``, ``NodeRegionChanged``).
    The host and pool a node had before the VM first left them are kept once in
    ``original_host_id`` / ``original_pool_id`` (with the reference's sources that is
    when the zone or region changes; with a tag source a migration inside the group
    still records the first host, though the zone stays). Tag labels follow the tags;
    tag taints only with ``sync_taints``.
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
    old_host, host_moved = _moves(
        current=current,
        id_key=labels.HOST_ID,
        old_value=old_zone,
        by_id=topology.zone_is_host,
        new_id=metadata.host_id,
    )
    if host_moved and labels.ORIGINAL_HOST_ID not in current:
        update[labels.ORIGINAL_HOST_ID] = old_host
    if old_zone is None and metadata.zone:
        # Initialized while its VM was halted (no host then), or its host tagged since:
        # the zone appears; nothing moved, so no event.
        update[labels.ZONE] = update[labels.ZONE_BETA] = metadata.zone
    elif old_zone is not None and metadata.zone and old_zone != metadata.zone:
        update[labels.ZONE] = update[labels.ZONE_BETA] = metadata.zone
        events.append(
            NodeEventSpec(
                EventType.WARNING,
                "NodeZoneChanged",
                f"Node {node.name} zone changed ({_zone_cause(topology, host_moved)}): "
                f"old={old_zone}, new={metadata.zone}",
            )
        )

    old_region = current.get(labels.REGION)
    old_pool, pool_moved = _moves(
        current=current,
        id_key=labels.POOL_ID,
        old_value=old_region,
        by_id=topology.region_is_pool,
        new_id=metadata.pool_id,
    )
    if pool_moved and labels.ORIGINAL_POOL_ID not in current:
        update[labels.ORIGINAL_POOL_ID] = old_pool
    if old_region is None and metadata.region and not topology.region_is_pool:
        update[labels.REGION] = update[labels.REGION_BETA] = metadata.region
    elif old_region is not None and metadata.region and old_region != metadata.region:
        update[labels.REGION] = update[labels.REGION_BETA] = metadata.region
        events.append(
            NodeEventSpec(
                EventType.WARNING,
                "NodeRegionChanged",
                f"Node {node.name} region changed ({_region_cause(topology, pool_moved)}): "
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
