"""Which addresses a Node gets from its VM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain import labels
from domain.model import VM, AddressType, NodeAddress


def provided_node_ips(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The IPs kubelet was started with (``--node-ip``), from its annotation."""
    raw = annotations.get(labels.PROVIDED_NODE_IP, "")
    return tuple(ip.strip() for ip in raw.split(",") if ip.strip())


def node_addresses(
    *, vm: VM, node_name: str, provided_ips: Sequence[str]
) -> tuple[NodeAddress, ...]:
    """The reference CCM's addresses: provided IPs as InternalIP, ``mainIpAddress``
    as ExternalIP, the node name as Hostname.

    Provided IPs win: no other InternalIP is ever added beside them.
    """
    out = [NodeAddress(AddressType.INTERNAL_IP, ip) for ip in provided_ips]
    if vm.main_ip_address:
        out.append(NodeAddress(AddressType.EXTERNAL_IP, vm.main_ip_address))
    out.append(NodeAddress(AddressType.HOSTNAME, node_name))
    return tuple(_dedupe(out))


def reported_ips(vm: VM) -> frozenset[str]:
    """Every IP the VM's guest tools report (``mainIpAddress`` and ``addresses``)."""
    ips = set(vm.addresses.values())
    if vm.main_ip_address:
        ips.add(vm.main_ip_address)
    return frozenset(ip for ip in ips if ip)


def missing_provided_ips(
    *, provided_ips: Sequence[str], reported: frozenset[str]
) -> tuple[str, ...]:
    """Provided IPs the VM does not report: initialization must wait.

    A VM that reports no IP at all (no guest tools yet) cannot contradict
    kubelet, so nothing is missing then.
    """
    if not reported:
        return ()
    return tuple(ip for ip in provided_ips if ip not in reported)


def _dedupe(addresses: list[NodeAddress]) -> list[NodeAddress]:
    seen: set[NodeAddress] = set()
    out = []
    for a in addresses:
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out
