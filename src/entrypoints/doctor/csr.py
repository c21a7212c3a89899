"""The kubelet serving CSR approver: on or off, and what becomes of pending requests.

``doctor --controllers=...`` says how the CCM runs (as its own flag does; ``*``
leaves the approver off). The pending ``kubernetes.io/kubelet-serving`` CSRs are
read in one list and judged by the approver's own rule
(``domain.policies.kubelet_serving``) against the node list and the XO snapshot
doctor read anyway: with the approver on, each pending CSR says why it waits (or
that it should have been approved: is the CCM leading?); with it off, pending
CSRs mean kubelets wait for a certificate nobody approves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from adapters.kubernetes import ApiError, KubeClient
from adapters.kubernetes.csr import CSRS, SELECTOR, request_from_object
from domain.certificates import CertificateRequest, CSRState
from domain.errors import ProviderIDError
from domain.model import InventorySnapshot, Node
from domain.options import CCMOptions
from domain.policies.kubelet_serving import (
    Verdict,
    address_verdict,
    missing_node_verdict,
    node_verdict,
    node_vm_id,
    request_verdict,
)
from entrypoints.doctor.findings import KUBE_CSR, Finding, format_age, ok, plural, warn

ENABLE = (
    "enable the approver (--controllers=*,cloud-node-csr-approval; the chart's "
    "csrApproval.enabled=true), or approve them by hand: kubectl certificate approve <name>"
)
WAITS = (
    "it is approved once the reason is gone; a request that is not what the node should "
    "ask for can be denied or deleted (kubectl certificate deny <name>)"
)
SHOULD_HAVE = (
    "check the CCM's logs (lines 'CSR <name>') and that a replica leads with "
    "--controllers naming cloud-node-csr-approval"
)


async def list_serving_requests(kube: KubeClient) -> list[CertificateRequest]:
    """Every kubelet-serving CSR (one list; ApiError when refused)."""
    answer = await kube.request("GET", CSRS, query=list(SELECTOR))
    return [request_from_object(item) for item in answer.get("items") or ()]


def judge(
    csr: CertificateRequest,
    *,
    nodes: Mapping[str, Node],
    snapshot: InventorySnapshot | None,
    options: CCMOptions,
) -> Verdict:
    """The approver's verdict, with the snapshot's VM in place of a fresh read."""
    verdict = request_verdict(csr)
    if verdict is not None:
        return verdict
    node = nodes.get(csr.node_name)
    if node is None:
        return missing_node_verdict(csr)
    verdict = node_verdict(csr, node)
    if verdict is not None:
        return verdict
    if snapshot is None:
        return Verdict(approve=False, reason="Xen Orchestra could not be read", retry=True)
    try:
        vm_id = node_vm_id(node)
    except ProviderIDError as err:
        return Verdict(approve=False, reason=f"node {node.name}: {err}")
    vm = snapshot.vms.get(vm_id)
    if vm is None:
        return Verdict(
            approve=False, reason=f"VM {vm_id} of node {node.name} is not in XO", retry=True
        )
    return address_verdict(csr, node=node, vm=vm, options=options.addresses)


def diagnose_csr_approval(
    *,
    enabled: bool,
    requests: Sequence[CertificateRequest] | None,
    problem: str,
    nodes: Sequence[Node] | None,
    snapshot: InventorySnapshot | None,
    options: CCMOptions,
    now: datetime,
) -> list[Finding]:
    """One line for the approver's state; with it on, one per pending request."""
    state = "on" if enabled else "off (--controllers does not name cloud-node-csr-approval)"
    if requests is None:
        if not enabled:
            return [ok(KUBE_CSR, "kubelet serving CSRs", f"approver {state}")]
        return [
            warn(
                KUBE_CSR,
                "kubelet serving CSRs",
                f"approver on; pending requests not checked: {problem}",
                "run doctor as an identity that may list certificatesigningrequests",
            )
        ]
    pending = [r for r in requests if r.kubelet_serving and r.state is CSRState.PENDING]
    ages = [(now - r.created_at).total_seconds() for r in pending if r.created_at is not None]
    oldest = f", the oldest for {format_age(max(ages))}" if ages else ""
    if not pending:
        return [ok(KUBE_CSR, "kubelet serving CSRs", f"approver {state}; none pending")]
    if not enabled:
        return [
            warn(
                KUBE_CSR,
                "kubelet serving CSRs",
                f"approver {state}, and {plural(len(pending), 'request')} pending{oldest}: "
                "kubelets with serverTLSBootstrap wait for a certificate nobody approves",
                ENABLE,
            )
        ]
    by_name = {node.name: node for node in nodes or ()}
    found = [
        ok(
            KUBE_CSR,
            "kubelet serving CSRs",
            f"approver on; {plural(len(pending), 'request')} pending{oldest}",
        )
    ]
    for csr in pending:
        verdict = judge(csr, nodes=by_name, snapshot=snapshot, options=options)
        who = csr.node_name or csr.username or "?"
        if verdict.approve:
            found.append(
                warn(
                    KUBE_CSR,
                    csr.name,
                    f"{who}: passes every check, yet pending: the approver has not run on it",
                    SHOULD_HAVE,
                )
            )
        else:
            found.append(warn(KUBE_CSR, csr.name, f"{who}: {verdict.reason}", WAITS))
    return found


def csr_read_problem(err: ApiError) -> str:
    return (
        "doctor's identity may not list certificatesigningrequests"
        if err.status in (401, 403)
        else str(err)
    )
