"""Which addresses a Node gets from its VM."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from domain import labels
from domain.model import VM, AddressType, NodeAddress
from domain.options import AddressFamily, AddressOptions, Network

_DEVICE_KEY = re.compile(r"^(\d+)/ipv([46])/(\d+)$")


def provided_node_ips(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The IPs kubelet was started with (``--node-ip``), from its annotation."""
    raw = annotations.get(labels.PROVIDED_NODE_IP, "")
    return tuple(ip.strip() for ip in raw.split(",") if ip.strip())


def reported_ips(vm: VM) -> frozenset[str]:
    """Every IP the VM's guest tools report (``mainIpAddress`` and ``addresses``)."""
    ips = set(vm.addresses.values())
    if vm.main_ip_address:
        ips.add(vm.main_ip_address)
    return frozenset(ip for ip in ips if ip)


@lru_cache(maxsize=4096)  # a node's few IPs are compared at every pass: parse each once
def canonical_ip(text: str) -> str:
    """An IP as one spelling (``FE80:0:0::1`` and ``fe80::1`` are one address), or the
    text itself, stripped and lower-cased, when it is not an IP."""
    raw = text.strip()
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return raw.lower()


def missing_provided_ips(
    *, provided_ips: Sequence[str], reported: frozenset[str]
) -> tuple[str, ...]:
    """Provided IPs the VM does not report: initialization must wait.

    Addresses are compared as addresses, not as text: kubelet and the guest
    tools may write one IPv6 address differently. A VM that reports no IP at
    all (no guest tools yet) cannot contradict kubelet, so nothing is missing then.
    """
    if not reported:
        return ()
    # One spelling on both sides (the usual case) needs no parsing; kubelet without
    # ``--node-ip`` provides none, and then the VM's addresses are not parsed at all.
    unmatched = [ip for ip in provided_ips if ip not in reported]
    if not unmatched:
        return ()
    known = {canonical_ip(ip) for ip in reported}
    return tuple(ip for ip in unmatched if canonical_ip(ip) not in known)


def guest_ips(vm: VM) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The VM's addresses in device order (``0/ipv4/0`` before ``1/ipv4/0``),
    link-local and unparsable entries dropped."""

    def order(item: tuple[str, str]) -> tuple[int, int, int, str]:
        match = _DEVICE_KEY.match(item[0])
        if not match:
            return (1 << 30, 0, 0, item[0])
        return (int(match.group(1)), int(match.group(2)), int(match.group(3)), item[0])

    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for _, raw in sorted(vm.addresses.items(), key=order):
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            continue
        if not ip.is_link_local and ip not in out:
            out.append(ip)
    return out


def _rank(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, cidrs: Sequence[Network]
) -> int | None:
    for i, net in enumerate(cidrs):
        if ip.version == net.version and ip in net:
            return i
    return None


def _family_ok(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, family: AddressFamily) -> bool:
    return family is AddressFamily.DUALSTACK or (ip.version == 4) == (family is AddressFamily.IPV4)


def node_addresses(
    *,
    vm: VM,
    node_name: str,
    provided_ips: Sequence[str],
    options: AddressOptions | None = None,
) -> tuple[NodeAddress, ...]:
    """The Node's addresses.

    Without address options: the reference's rule (provided IPs as
    InternalIP, ``mainIpAddress`` as ExternalIP, the node name as Hostname),
    then ordered as cloud-provider's node controller orders them when kubelet
    gave ``--node-ip`` (``GetNodeAddressesFromNodeIP``), so the list is the one
    the Go CCM writes, element for element.
    With them: the guest addresses, classified by CIDR, filtered by family,
    ordered by CIDR preference. Provided IPs always win: when kubelet gave
    ``--node-ip``, no other InternalIP is added beside them.
    """
    out = [NodeAddress(AddressType.INTERNAL_IP, ip) for ip in provided_ips]
    if options is None or not options.selecting:
        if vm.main_ip_address:
            out.append(NodeAddress(AddressType.EXTERNAL_IP, vm.main_ip_address))
        out.append(NodeAddress(AddressType.HOSTNAME, node_name))
        return tuple(_dedupe(_provided_first(provided_ips, out)))
    else:
        internal: list[tuple[int, int, str]] = []
        external: list[tuple[int, int, str]] = []
        for position, ip in enumerate(guest_ips(vm)):
            if not _family_ok(ip, options.family) or _rank(ip, options.exclude_cidrs) is not None:
                continue
            if (rank := _rank(ip, options.internal_cidrs)) is not None:
                internal.append((rank, position, str(ip)))
            elif (rank := _rank(ip, options.external_cidrs)) is not None:
                external.append((rank, position, str(ip)))
            elif not options.internal_cidrs and not options.external_cidrs:
                # Only a family or exclusions were given: every address is internal.
                internal.append((0, position, str(ip)))
        if not provided_ips:
            out += [NodeAddress(AddressType.INTERNAL_IP, ip) for *_, ip in sorted(internal)]
        out += [NodeAddress(AddressType.EXTERNAL_IP, ip) for *_, ip in sorted(external)]
    out.append(NodeAddress(AddressType.HOSTNAME, node_name))
    return tuple(_dedupe(out))


def _same_ip(a: str, b: str) -> bool:
    return canonical_ip(a) == canonical_ip(b)


def _provided_first(provided_ips: Sequence[str], addresses: list[NodeAddress]) -> list[NodeAddress]:
    """cloud-provider's ``GetNodeAddressesFromNodeIP``: for each provided IP, every
    address equal to it (any type), then the addresses of the types not matched."""
    if not provided_ips:
        return addresses
    enforced: list[NodeAddress] = []
    matched_types: set[AddressType] = set()
    for ip in provided_ips:
        for address in addresses:
            if _same_ip(address.address, ip):
                enforced.append(address)
                matched_types.add(address.type)
    return enforced + [a for a in addresses if a.type not in matched_types]


def _dedupe(addresses: list[NodeAddress]) -> list[NodeAddress]:
    seen: set[NodeAddress] = set()
    out = []
    for a in addresses:
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out
