"""InstanceMetadata: what a Node should look like, given its VM, host and pool."""

from __future__ import annotations

from domain import labels
from domain.model import (
    VM,
    EventType,
    Host,
    InstanceMetadata,
    Node,
    NodeEventSpec,
    Pool,
    PowerState,
)
from domain.options import CCMOptions
from domain.policies.addresses import node_addresses, provided_node_ips, reported_ips
from domain.policies.instance_type import instance_type
from domain.policies.label_values import sanitize_label_value
from domain.policies.tags import from_tags
from domain.policies.topology import INVALID_TOPOLOGY_TAG, resident_host_id, topology
from domain.providerid import ProviderID, is_ours

DEFAULT_OPTIONS = CCMOptions()
INVALID_VM_TAG = "InvalidVMTag"


def instance_metadata(
    *, vm: VM, host: Host | None, pool: Pool | None, node: Node, options: CCMOptions | None = None
) -> InstanceMetadata:
    """Metadata for ``node`` backed by ``vm``.

    The providerID already on the node is kept verbatim (it is immutable);
    otherwise it is built from the VM's pool and id. Host labels are only
    produced when the VM is resident on a host. Zone and region come from the
    sources the options name (``domain.policies.topology``).
    """
    provider_id = (
        node.provider_id
        if is_ours(node.provider_id)
        else ProviderID(pool_id=vm.pool_id, vm_id=vm.id).format()
    )
    options = options or DEFAULT_OPTIONS
    resident = resident_host_id(vm)
    where = topology(vm=vm, host=host, pool=pool, options=options.topology)
    tags = from_tags(vm.tags, options.tags)
    unknown: set[str] = set()
    extra = {
        labels.VM_NAME_LABEL: sanitize_label_value(vm.name_label),
        labels.POOL_ID: sanitize_label_value(vm.pool_id),
    }
    if pool is not None:
        extra[labels.POOL_NAME_LABEL] = sanitize_label_value(pool.name_label)
    else:
        extra[labels.POOL_NAME_LABEL] = labels.UNKNOWN_NAME
        unknown.add(labels.POOL_NAME_LABEL)
    if resident:
        extra[labels.HOST_ID] = sanitize_label_value(resident)
        if host is not None and host.id == resident:
            extra[labels.HOST_NAME_LABEL] = sanitize_label_value(host.name_label)
        else:
            extra[labels.HOST_NAME_LABEL] = labels.UNKNOWN_NAME
            unknown.add(labels.HOST_NAME_LABEL)
    return InstanceMetadata(
        provider_id=provider_id,
        instance_type=tags.instance_type
        or instance_type(cpus=vm.cpus, memory_bytes=vm.memory_bytes),
        region=where.region,
        zone=where.zone,
        host_id=resident,
        pool_id=vm.pool_id,
        addresses=node_addresses(
            vm=vm,
            node_name=node.name,
            provided_ips=provided_node_ips(node.annotations),
            options=options.addresses,
        ),
        additional_labels=extra,
        shutdown=vm.power_state is not PowerState.RUNNING,
        reported_ips=reported_ips(vm),
        tag_labels=tags.labels,
        tag_taints=tags.taints,
        invalid_tags=tags.invalid,
        unknown_names=frozenset(unknown),
        topology_problems=tuple(p.message for p in where.problems),
    )


def invalid_tag_warnings(metadata: InstanceMetadata) -> tuple[NodeEventSpec, ...]:
    """One Warning per VM tag that could not be used, naming the tag and why."""
    return tuple(
        NodeEventSpec(EventType.WARNING, INVALID_VM_TAG, f"VM tag {tag!r} ignored: {why}")
        for tag, why in metadata.invalid_tags
    )


def topology_tag_warnings(metadata: InstanceMetadata) -> tuple[NodeEventSpec, ...]:
    """One Warning per host or pool tag the topology sources could not use."""
    return tuple(
        NodeEventSpec(EventType.WARNING, INVALID_TOPOLOGY_TAG, problem)
        for problem in metadata.topology_problems
    )
