"""Operator choices that shape the policies, as plain values.

They come from the cloud config (see ``docs/configuration.md``); defaults
reproduce the reference CCM exactly, so a config without these keys behaves
like a drop-in replacement.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TagOptions:
    """XO tags that become node labels and taints.

    ``k8s.label/<key>=<value>`` is a label, ``k8s.taint/<key>=<value>:<Effect>``
    (or ``k8s.taint/<key>:<Effect>``) a taint. Taints are applied at
    registration only, unless ``sync_taints``: operators may remove them.
    ``k8s.instance-type=<value>`` is the node's instance type, in place of the
    Go CCM's ``<n>vCPU-<m>GB``. An empty prefix turns its kind of tag off.
    """

    label_prefix: str = "k8s.label/"
    taint_prefix: str = "k8s.taint/"
    sync_taints: bool = False
    instance_type_prefix: str = "k8s.instance-type="


class AddressFamily(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DUALSTACK = "dualstack"


@dataclass(frozen=True, slots=True)
class AddressOptions:
    """How node addresses are chosen among the VM's guest addresses.

    With nothing set, the reference's rule applies (provided IPs as
    InternalIP, ``mainIpAddress`` as ExternalIP, the name as Hostname).
    Otherwise an address in ``internal_cidrs`` is an InternalIP, one in
    ``external_cidrs`` an ExternalIP, one in ``exclude_cidrs`` never used;
    within a type, addresses are ordered by the first CIDR that holds them.
    """

    internal_cidrs: tuple[Network, ...] = ()
    external_cidrs: tuple[Network, ...] = ()
    exclude_cidrs: tuple[Network, ...] = ()
    family: AddressFamily = AddressFamily.IPV4

    @property
    def selecting(self) -> bool:
        return bool(self.internal_cidrs or self.external_cidrs or self.exclude_cidrs) or (
            self.family is not AddressFamily.IPV4
        )


@dataclass(frozen=True, slots=True)
class DeletionOptions:
    """Guards in front of the only irreversible thing the CCM does.

    A node is deleted only after its VM was seen gone twice at least
    ``confirm_delay`` seconds apart, and at most ``max(minimum, percent % of
    nodes)`` deletions happen per ``window`` seconds; past that, deletions
    stop until an operator restarts the CCM. ``dry_run`` only logs and
    records events.
    """

    confirm_delay: float = 30.0
    rate_minimum: int = 5
    rate_percent: float = 10.0
    window: float = 600.0
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class OutOfServiceOptions:
    """``node.kubernetes.io/out-of-service=nodeshutdown:NoExecute`` on nodes whose
    VM has been halted for ``grace_period`` seconds, so stateful pods move
    without the 6-minute volume-detach wait. Off by default."""

    enabled: bool = False
    grace_period: float = 300.0


class ZoneSource(StrEnum):
    """Where ``topology.kubernetes.io/zone`` comes from (cloud-config ``zoneSource``)."""

    HOST = "host"  # the VM's resident host id (the reference's)
    HOST_TAG = "hostTag"  # the value of the tag ``<zoneTag>=<zone>`` of that host
    POOL = "pool"  # the VM's pool id
    NONE = "none"  # never set


class RegionSource(StrEnum):
    """Where ``topology.kubernetes.io/region`` comes from (cloud-config ``regionSource``)."""

    POOL = "pool"  # the VM's pool id (the reference's)
    POOL_TAG = "poolTag"  # the value of the tag ``<regionTag>=<region>`` of that pool
    NONE = "none"  # never set


@dataclass(frozen=True, slots=True)
class TopologyOptions:
    """What the zone and region labels name.

    The reference's zone is the host, so every live migration moves it; operators who
    group hosts (racks, rooms, sites) tag each host ``k8s.zone=<group>`` and choose
    ``HOST_TAG``: a migration inside the group then changes no zone. The
    ``topology.k8s.xenorchestra/*`` labels name the host and pool whatever is chosen.
    """

    zone_source: ZoneSource = ZoneSource.HOST
    zone_tag: str = "k8s.zone"
    region_source: RegionSource = RegionSource.POOL
    region_tag: str = "k8s.region"

    @property
    def zone_is_host(self) -> bool:
        return self.zone_source is ZoneSource.HOST

    @property
    def region_is_pool(self) -> bool:
        return self.region_source is RegionSource.POOL


@dataclass(frozen=True, slots=True)
class CCMOptions:
    tags: TagOptions = field(default_factory=TagOptions)
    topology: TopologyOptions = field(default_factory=TopologyOptions)
    addresses: AddressOptions = field(default_factory=AddressOptions)
    deletion: DeletionOptions = field(default_factory=DeletionOptions)
    out_of_service: OutOfServiceOptions = field(default_factory=OutOfServiceOptions)
    match_by_name: bool = False
