"""The kubelet serving CSR approver: the ``cloud-node-csr-approval`` controller's work.

One CSR at a time: the rule of :mod:`domain.policies.kubelet_serving`, asked in
its order so that XO is only asked for a CSR that passed everything else, and
the VM read from XO by id at that moment (never a snapshot or a cache), an answer
the freshness ledger (``domain.freshness``) admits: no newer one was applied or
announced for that VM while it was on its way. An
approval adds the ``Approved`` condition; nothing is ever denied. Why a CSR stays
pending is said once per CSR and reason: a log line and a Warning event
``KubeletServingCSRPending`` on the node (when there is one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from domain.certificates import CertificateRequest, CSRState
from domain.errors import (
    CertificateRequestGoneError,
    InventoryError,
    ProviderIDError,
)
from domain.freshness import Freshness
from domain.model import EventType, Node
from domain.options import CCMOptions
from domain.policies.kubelet_serving import (
    APPROVED_REASON,
    Verdict,
    address_verdict,
    missing_node_verdict,
    node_verdict,
    node_vm_id,
    request_verdict,
)
from domain.ports import CertificateRequests, EventRecorder, Inventory, NodeStore

log = logging.getLogger(__name__)

SOURCE = "cloud-node-csr-approval-controller"
#: Reads of the VM before an approval overtaken by newer answers each time waits.
FRESH_READS = 3
PENDING_EVENT = "KubeletServingCSRPending"


class Decision(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    IGNORED = "ignored"  # another signer's, or no longer pending
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Review:
    """What became of one CSR; ``retry``: pending for a reason time may change."""

    decision: Decision
    reason: str = ""
    retry: bool = False


class CSRApprovalService:
    """Approves the kubelet serving CSRs of the nodes this CCM initialized."""

    def __init__(
        self,
        *,
        requests: CertificateRequests,
        nodes: NodeStore,
        inventory: Inventory,
        events: EventRecorder,
        options: CCMOptions | None = None,
        freshness: Freshness | None = None,
    ) -> None:
        self._requests = requests
        self._nodes = nodes
        self._inventory = inventory
        self._events = events
        self._options = options or CCMOptions()
        self._freshness = Freshness() if freshness is None else freshness
        #: per pending CSR: (its uid, the reason last said), so a reason is said once
        self._said: dict[str, tuple[str, str]] = {}

    async def review(self, *, name: str) -> Review:
        """Approve CSR ``name`` or say why not. Raises CertificateRequestConflictError
        (or another CCMError) when it must be reviewed again."""
        csr = await self._requests.get(name=name)
        if csr is None:
            self._said.pop(name, None)
            return Review(Decision.GONE)
        if not csr.kubelet_serving or csr.state is not CSRState.PENDING:
            self._said.pop(name, None)
            return Review(Decision.IGNORED)
        node: Node | None = None
        verdict = request_verdict(csr)
        if verdict is None:
            node = await self._nodes.get(name=csr.node_name)
            if node is None:
                verdict = missing_node_verdict(csr)
            else:
                verdict = node_verdict(csr, node) or await self._against_vm(csr, node)
        if not verdict.approve:
            await self._explain(csr, node, verdict)
            return Review(Decision.PENDING, verdict.reason, verdict.retry)
        try:
            approved = await self._requests.approve(
                request=csr, reason=APPROVED_REASON, message=verdict.reason
            )
        except CertificateRequestGoneError:
            self._said.pop(name, None)
            return Review(Decision.GONE)
        self._said.pop(name, None)
        if not approved:
            return Review(Decision.IGNORED)
        log.info("CSR %s approved: %s", csr.name, verdict.reason)
        return Review(Decision.APPROVED, verdict.reason)

    async def _against_vm(self, csr: CertificateRequest, node: Node) -> Verdict:
        try:
            vm_id = node_vm_id(node)
        except ProviderIDError as err:
            return Verdict(approve=False, reason=f"node {node.name}: {err}")
        for _ in range(FRESH_READS):
            try:
                vm, seen = await self._freshness.observe(
                    partial(self._inventory.get_vm, vm_id=vm_id)
                )
            except InventoryError as err:
                return Verdict(
                    approve=False,
                    reason=f"Xen Orchestra cannot tell VM {vm_id}'s addresses now: {err}",
                    retry=True,
                )
            if vm is None:
                return Verdict(
                    approve=False,
                    reason=f"VM {vm_id} of node {node.name} not found in Xen Orchestra",
                    retry=True,
                )
            verdict = address_verdict(csr, node=node, vm=vm, options=self._options.addresses)
            # An approval rests on this answer: none newer may have been applied or
            # announced for the VM meanwhile (an address removed just now).
            if not verdict.approve or self._freshness.admits(vm.id, seen):
                return verdict
        return Verdict(
            approve=False,
            reason=f"Xen Orchestra's answers about VM {vm_id} kept changing",
            retry=True,
        )

    async def _explain(self, csr: CertificateRequest, node: Node | None, verdict: Verdict) -> None:
        said = (csr.uid, verdict.reason)
        if self._said.get(csr.name) == said:
            log.debug("CSR %s still pending: %s", csr.name, verdict.reason)
            return
        self._said[csr.name] = said
        log.info("CSR %s of %s left pending: %s", csr.name, csr.username, verdict.reason)
        if node is None and csr.node_name:
            node = await self._nodes.get(name=csr.node_name)
        if node is not None:
            await self._events.record(
                node=node,
                type=EventType.WARNING,
                reason=PENDING_EVENT,
                message=(
                    f"Kubelet serving certificate request {csr.name} not approved: {verdict.reason}"
                ),
                source=SOURCE,
            )
