"""When the CSR approver approves a kubelet serving certificate request, and why not.

A serving certificate lets a kubelet prove it is the node at the addresses it
names; signed for the wrong ones, it lets anyone who holds it impersonate another
endpoint. So a ``kubernetes.io/kubelet-serving`` CSR is approved only when all of
these hold, in this order (the first that fails is the reason given):

1. :func:`request_verdict`, the CSR alone: it comes from ``system:node:<name>`` in
   the group ``system:nodes``; its PEM decodes; its subject is exactly
   ``CN=system:node:<name>, O=system:nodes``; its usages are exactly a serving
   certificate's (digital signature, server auth, and key encipherment for RSA
   keys); it names at least one DNS name or IP address and nothing else (no
   e-mail address, no URI). Kubernetes' own signer checks the same
   (``ValidateKubeletServingCSR``).
2. :func:`missing_node_verdict`, :func:`node_verdict`: the Node exists and this
   CCM initialized it (our providerID, no uninitialized taint).
3. :func:`address_verdict`, against the node's VM read from XO just now: the VM
   runs; every DNS name is one of the node's names (the node name and the
   Hostname/DNS addresses the CCM gives it from the VM, never what the kubelet
   could have written into its own status); every IP address is one XO reports
   for the VM.

Nothing is ever denied: a CSR that fails stays pending (another approver may
know better), with the reason. ``retry`` says whether time may change the
answer (a node not initialized yet, guest tools not reporting the address yet):
then the controller asks again later.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from domain import labels
from domain.certificates import NODE_USER_PREFIX, NODES_GROUP, CertificateRequest
from domain.model import VM, AddressType, Node
from domain.options import AddressOptions
from domain.policies.addresses import node_addresses, provided_node_ips, reported_ips
from domain.providerid import ProviderID, is_ours

DIGITAL_SIGNATURE = "digital signature"
KEY_ENCIPHERMENT = "key encipherment"
SERVER_AUTH = "server auth"
#: The usage sets of a serving certificate: RSA keys add key encipherment.
SERVING_USAGES = (
    frozenset({DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, SERVER_AUTH}),
    frozenset({DIGITAL_SIGNATURE, SERVER_AUTH}),
)
_NAME_TYPES = frozenset({AddressType.HOSTNAME, AddressType.INTERNAL_DNS, AddressType.EXTERNAL_DNS})
#: The condition's reason on an approved CSR.
APPROVED_REASON = "XenOrchestraCCMApproved"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Approve, or leave pending for ``reason`` (one line); ``retry``: ask again later."""

    approve: bool
    reason: str
    retry: bool = False


def _pending(reason: str, *, retry: bool = False) -> Verdict:
    return Verdict(approve=False, reason=reason, retry=retry)


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def request_verdict(csr: CertificateRequest) -> Verdict | None:
    """What the CSR alone decides: a pending verdict, or None (go on: ask the node)."""
    name = csr.node_name
    if not name:
        return _pending(f"requested by {csr.username or 'nobody'}, not by a node (system:node:…)")
    if NODES_GROUP not in csr.groups:
        return _pending(f"requested by {csr.username} outside the group {NODES_GROUP}")
    if csr.request_problem:
        return _pending(f"the request does not decode: {csr.request_problem}")
    if (
        csr.common_name != csr.username
        or tuple(csr.organizations) != (NODES_GROUP,)
        or csr.other_subject
    ):
        subject = ", ".join(
            [f"CN={csr.common_name}", *(f"O={o}" for o in csr.organizations), *csr.other_subject]
        )
        return _pending(f"subject {subject} is not CN={NODE_USER_PREFIX}{name}, O={NODES_GROUP}")
    if frozenset(csr.usages) not in SERVING_USAGES:
        return _pending(
            f"usages {_listed(set(csr.usages))} are not a serving certificate's "
            f"({DIGITAL_SIGNATURE}, [{KEY_ENCIPHERMENT},] {SERVER_AUTH})"
        )
    if csr.other_names:
        return _pending(f"names other than DNS names and IPs: {_listed(csr.other_names)}")
    if not csr.dns_names and not csr.ip_addresses:
        return _pending("names no DNS name and no IP address")
    return None


def missing_node_verdict(csr: CertificateRequest) -> Verdict:
    """The requestor's Node does not exist (yet: a kubelet may ask before it registered)."""
    return _pending(f"node {csr.node_name} does not exist", retry=True)


def node_verdict(csr: CertificateRequest, node: Node) -> Verdict | None:
    """Pending unless ``node`` (the requestor's) is one this CCM initialized; None: go on."""
    name = csr.node_name
    if node.provider_id and not is_ours(node.provider_id):
        return _pending(f"node {name} is not a Xen Orchestra VM (providerID {node.provider_id})")
    if not node.provider_id or node.has_taint(labels.UNINITIALIZED_TAINT_KEY):
        return _pending(f"node {name} is not initialized yet", retry=True)
    return None


def node_vm_id(node: Node) -> str:
    """The VM id of a node :func:`node_verdict` let through (ProviderIDError if malformed)."""
    return ProviderID.parse(node.provider_id).vm_id


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def address_verdict(
    csr: CertificateRequest, *, node: Node, vm: VM, options: AddressOptions | None = None
) -> Verdict:
    """Approve when the CSR's names are the node's and its IPs the VM's, as XO reports
    them now (``vm`` must be a fresh read)."""
    if not vm.running:
        return _pending(f"VM {vm.id} is {vm.power_state.value.lower()}, not running", retry=True)
    addresses = node_addresses(
        vm=vm,
        node_name=node.name,
        provided_ips=provided_node_ips(node.annotations),
        options=options,
    )
    names = {node.name} | {a.address for a in addresses if a.type in _NAME_TYPES}
    foreign_names = [dns for dns in csr.dns_names if dns not in names]
    if foreign_names:
        return _pending(
            f"DNS name(s) {_listed(foreign_names)} are not the node's ({_listed(names)})"
        )
    known = {ip for ip in map(_ip, reported_ips(vm)) if ip is not None}
    foreign_ips = [text for text in csr.ip_addresses if _ip(text) not in known]
    if foreign_ips:
        if not known:
            return _pending(f"VM {vm.id} reports no IP address yet", retry=True)
        return _pending(
            f"IP address(es) {_listed(foreign_ips)} are not among VM {vm.id}'s "
            f"({_listed(str(ip) for ip in known)})",
            retry=True,
        )
    return Verdict(
        approve=True,
        reason=(
            f"node {node.name}'s own request; its names and IP addresses are VM {vm.id}'s, "
            "as Xen Orchestra reports them"
        ),
    )
