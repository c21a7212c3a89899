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


@dataclass(frozen=True, slots=True)
class CCMOptions:
    tags: TagOptions = field(default_factory=TagOptions)
    addresses: AddressOptions = field(default_factory=AddressOptions)
    deletion: DeletionOptions = field(default_factory=DeletionOptions)
    out_of_service: OutOfServiceOptions = field(default_factory=OutOfServiceOptions)
    match_by_name: bool = False
