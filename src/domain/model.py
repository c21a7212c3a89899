"""Value objects: what the CCM knows of XO objects and of Nodes.

They are frozen so a service can never mutate a cached object behind the
cache's back; changes are expressed as :class:`NodeChange` values instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

EMPTY: Mapping[str, str] = MappingProxyType({})


def _empty() -> Mapping[str, str]:
    return EMPTY


class PowerState(StrEnum):
    """XO's ``power_state`` of a VM."""

    RUNNING = "Running"
    HALTED = "Halted"
    PAUSED = "Paused"
    SUSPENDED = "Suspended"


@dataclass(frozen=True, slots=True)
class VM:
    """A VM as the CCM needs it (a small subset of XO's ~3 KB object).

    ``container`` is XO's ``$container``: the resident host while running, but
    the *pool* (or a local SR's host) while halted, which is why the zone is
    derived through :func:`domain.policies.topology.resident_host_id`.
    """

    id: str
    name_label: str
    power_state: PowerState
    pool_id: str
    container: str
    cpus: int
    memory_bytes: int
    main_ip_address: str | None = None
    addresses: Mapping[str, str] = field(default_factory=_empty)
    tags: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.power_state is PowerState.RUNNING


@dataclass(frozen=True, slots=True)
class Host:
    """A host; its ``tags`` may name the zone of the VMs it runs (``zoneSource: hostTag``)."""

    id: str
    name_label: str
    pool_id: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool; its ``tags`` may name the region of its VMs (``regionSource: poolTag``)."""

    id: str
    name_label: str
    tags: tuple[str, ...] = ()


class PoolPresence(StrEnum):
    """What XO holds of a pool now, as a VM's absence is judged (``pools_known``)."""

    #: the pool and its VMs (XO lists a control domain of it: fetched with the VMs)
    HELD = "held"
    #: the pool, without a control domain listed: its VMs not loaded (a failed VM
    #: fetch after a reconnect), or hidden from a token by XO's ACLs
    WITHOUT_VMS = "without-vms"
    #: not the pool: XO lost it (or never had it)
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class XOServer:
    """XO's connection to one pool's master (its ``/servers`` record).

    ``pool_id`` is only known while connected; ``error`` is what XO says went wrong
    (empty: nothing), set once a failed connect or, on XO's event loop, once the pool
    has gone ``xapiMarkDisconnectedDelay`` (5 min by default) without news.
    """

    label: str
    enabled: bool
    status: str
    pool_id: str = ""
    error: str = ""


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: TaintEffect
    value: str = ""
    time_added: datetime | None = field(default=None, compare=False)


class AddressType(StrEnum):
    HOSTNAME = "Hostname"
    INTERNAL_IP = "InternalIP"
    EXTERNAL_IP = "ExternalIP"
    INTERNAL_DNS = "InternalDNS"
    EXTERNAL_DNS = "ExternalDNS"


@dataclass(frozen=True, slots=True)
class NodeAddress:
    type: AddressType
    address: str


class Readiness(StrEnum):
    """The Node's ``Ready`` condition; MISSING when kubelet never reported it."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"
    MISSING = "Missing"


@dataclass(frozen=True, slots=True)
class Node:
    """The fields of a Kubernetes Node the CCM reads, nothing more.

    ``resource_version`` makes updates optimistic: a write built from a stale
    copy is refused with a conflict instead of silently undoing another write.
    """

    name: str
    uid: str = ""
    resource_version: str = ""
    provider_id: str = ""
    system_uuid: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)
    taints: tuple[Taint, ...] = ()
    addresses: tuple[NodeAddress, ...] = ()
    readiness: Readiness = Readiness.MISSING
    created_at: datetime | None = None

    def has_taint(self, key: str) -> bool:
        # Asked of every node by every pass; most have no taint at all.
        return bool(self.taints) and any(t.key == key for t in self.taints)

    def carries(self, taint: Taint) -> bool:
        """Whether a taint of that key *and* effect is there (how Kubernetes tells
        taints apart: another effect under the same key is someone else's)."""
        return bool(self.taints) and any(
            t.key == taint.key and t.effect is taint.effect for t in self.taints
        )

    @property
    def ready(self) -> bool:
        return self.readiness is Readiness.TRUE


@dataclass(frozen=True, slots=True)
class InstanceMetadata:
    """What XO says a Node should look like; each field names its destination.

    - ``provider_id`` -> ``spec.providerID``
    - ``instance_type`` -> ``node.kubernetes.io/instance-type`` (+ beta)
    - ``region`` (the pool uuid by default) -> ``topology.kubernetes.io/region`` (+ beta)
    - ``zone`` (the host uuid by default; empty while halted, or when a tag source finds
      no usable tag) -> ``topology.kubernetes.io/zone`` (+ beta)
    - ``host_id`` (the resident host, empty while halted), ``pool_id``: where the VM is,
      whatever zone and region name (the ``original_*`` labels record these)
    - ``addresses`` -> ``status.addresses``
    - ``additional_labels`` -> the ``*.k8s.xenorchestra/*`` labels
    - ``shutdown`` -> the lifecycle controller's shutdown taint
    - ``reported_ips``: every IP the VM's guest tools report, to validate
      kubelet's ``--node-ip`` against (empty: nothing to validate against)
    - ``tag_labels``/``tag_taints`` -> labels and taints asked for by VM tags;
      ``invalid_tags`` -> Warning events naming each tag and why
    - ``unknown_names``: the name-label keys holding the ``unknown`` placeholder because
      the host or pool could not be looked up (never written over a known name)
    - ``topology_problems``: host or pool tags a tag source could not use (Warning events)
    """

    provider_id: str
    instance_type: str
    region: str
    zone: str
    addresses: tuple[NodeAddress, ...]
    additional_labels: Mapping[str, str]
    shutdown: bool
    reported_ips: frozenset[str] = frozenset()
    tag_labels: Mapping[str, str] = field(default_factory=_empty)
    tag_taints: tuple[Taint, ...] = ()
    invalid_tags: tuple[tuple[str, str], ...] = ()
    unknown_names: frozenset[str] = frozenset()
    host_id: str = ""
    pool_id: str = ""
    topology_problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A minimal edit of a Node: only what differs, so no-op passes write nothing."""

    provider_id: str | None = None
    set_labels: Mapping[str, str] = field(default_factory=_empty)
    remove_labels: frozenset[str] = frozenset()
    add_taints: tuple[Taint, ...] = ()
    remove_taint_keys: frozenset[str] = frozenset()
    remove_taints: tuple[Taint, ...] = ()  # matched by key and effect
    set_annotations: Mapping[str, str] = field(default_factory=_empty)
    remove_annotations: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (
            self.provider_id
            or self.set_labels
            or self.remove_labels
            or self.add_taints
            or self.remove_taint_keys
            or self.remove_taints
            or self.set_annotations
            or self.remove_annotations
        )

    def merge(self, other: NodeChange) -> NodeChange:
        """Both changes in one write (``other`` wins where they overlap)."""
        return NodeChange(
            provider_id=other.provider_id or self.provider_id,
            set_labels={
                **{k: v for k, v in self.set_labels.items() if k not in other.remove_labels},
                **other.set_labels,
            },
            remove_labels=(self.remove_labels - set(other.set_labels)) | other.remove_labels,
            add_taints=self.add_taints + other.add_taints,
            remove_taint_keys=self.remove_taint_keys | other.remove_taint_keys,
            remove_taints=self.remove_taints + other.remove_taints,
            set_annotations={
                **{
                    k: v
                    for k, v in self.set_annotations.items()
                    if k not in other.remove_annotations
                },
                **other.set_annotations,
            },
            remove_annotations=(self.remove_annotations - set(other.set_annotations))
            | other.remove_annotations,
        )

    def apply(self, node: Node) -> Node:
        """The Node as it will be once this change is written (pure)."""
        labels = {k: v for k, v in node.labels.items() if k not in self.remove_labels}
        labels.update(self.set_labels)
        annotations = {
            k: v for k, v in node.annotations.items() if k not in self.remove_annotations
        }
        annotations.update(self.set_annotations)
        dropped = {(t.key, t.effect) for t in self.remove_taints}
        taints = tuple(
            t
            for t in node.taints
            if t.key not in self.remove_taint_keys and (t.key, t.effect) not in dropped
        )
        present = {(t.key, t.effect) for t in taints}
        taints += tuple(t for t in self.add_taints if (t.key, t.effect) not in present)
        return Node(
            name=node.name,
            uid=node.uid,
            resource_version=node.resource_version,
            provider_id=node.provider_id or (self.provider_id or ""),
            system_uuid=node.system_uuid,
            labels=MappingProxyType(labels),
            annotations=MappingProxyType(annotations),
            taints=taints,
            addresses=node.addresses,
            readiness=node.readiness,
            created_at=node.created_at,
        )


@dataclass(frozen=True, slots=True)
class InventorySnapshot:
    """One consistent-enough read of XO: every VM, host and pool, by id.

    A sync pass over N nodes works from one snapshot, so it costs three XO
    requests however large N is.
    """

    vms: Mapping[str, VM]
    hosts: Mapping[str, Host]
    pools: Mapping[str, Pool]


class ChangeKind(StrEnum):
    ADDED = "add"
    UPDATED = "update"
    REMOVED = "remove"
    RESYNC = "resync"


@dataclass(frozen=True, slots=True)
class VMChange:
    """One entry of the XO change stream.

    RESYNC means the stream was (re)connected and anything may have changed:
    consumers re-list. For REMOVED, ``vm`` is the last known object.
    """

    kind: ChangeKind
    vm: VM | None = None


@dataclass(frozen=True, slots=True)
class PlacementChange:
    """A host or pool XO reports updated (its name or tags, as the field lists pick):
    the labels of the nodes placed there may have to follow (a zone from a host tag,
    a host name). Exactly one of ``host`` and ``pool`` is set."""

    host: Host | None = None
    pool: Pool | None = None


#: One entry of the Inventory port's change stream.
Change = VMChange | PlacementChange


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class NodeEventSpec:
    """An event a service says about a Node (the EventRecorder port writes it)."""

    type: EventType
    reason: str
    message: str
