"""The kubelet serving CSR approver: the rule as a table, then the service and the
controller on the in-memory adapters and a fake clock."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from adapters.memory import (
    InMemoryCertificateRequests,
)
from application.controllers import DEFAULT_CONTROLLERS
from domain import labels as L
from domain.certificates import CertificateRequest, CSRState
from domain.errors import InventoryError
from domain.model import AddressType, EventType, Node, NodeAddress, PowerState
from domain.options import AddressOptions
from domain.policies.kubelet_serving import (
    Verdict,
    address_verdict,
    missing_node_verdict,
    node_verdict,
    request_verdict,
)
from domain.services.csr_approval import PENDING_EVENT, CSRApprovalService, Decision
from entrypoints.flags.settings import Settings, parse_controllers
from tests.world import ONE_HOST, World, controllers_world

from .factories import POOL_A, VM_1, node, vm

NAME = "worker-1"
USER = f"system:node:{NAME}"
PROVIDER_ID = f"xenorchestra://{POOL_A}/{VM_1}"
SERVING = ("digital signature", "key encipherment", "server auth")
GUEST = {"0/ipv4/0": "10.0.0.5", "0/ipv6/0": "2001:db8::5"}


def csr(**overrides: object) -> CertificateRequest:
    """A kubelet's serving CSR for worker-1, as the kubelet files it."""
    fields: dict[str, object] = dict(
        name="csr-1",
        uid="uid-csr-1",
        username=USER,
        groups=("system:nodes", "system:authenticated"),
        usages=SERVING,
        common_name=USER,
        organizations=("system:nodes",),
        dns_names=(NAME,),
        ip_addresses=("10.0.0.5",),
    )
    fields.update(overrides)
    return CertificateRequest(**fields)  # type: ignore[arg-type]


def initialized(**overrides: object) -> Node:
    fields: dict[str, object] = dict(taints=(), provider_id=PROVIDER_ID)
    fields.update(overrides)
    return node(NAME, **fields)


def the_vm(**overrides: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = dict(addresses=GUEST, main_ip_address="10.0.0.5")
    fields.update(overrides)
    return vm(**fields)


# -- the rule ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        pytest.param(csr(), None, id="a-kubelets-request-goes-on"),
        pytest.param(
            csr(usages=("digital signature", "server auth")), None, id="ecdsa-usages-go-on"
        ),
        pytest.param(
            csr(usages=("server auth", "digital signature", "server auth")),
            None,
            id="usages-are-a-set",
        ),
        pytest.param(csr(ip_addresses=()), None, id="dns-name-only-goes-on"),
        pytest.param(
            csr(username="system:serviceaccount:kube-system:x"),
            "requested by system:serviceaccount:kube-system:x, not by a node",
            id="not-a-node",
        ),
        pytest.param(
            csr(username="system:node:"), "requested by system:node:, not by a node", id="no-name"
        ),
        pytest.param(
            csr(groups=("system:authenticated",)), "outside the group system:nodes", id="no-group"
        ),
        pytest.param(
            csr(request_problem="not a PEM certificate request"),
            "the request does not decode: not a PEM",
            id="undecodable",
        ),
        pytest.param(
            csr(common_name="system:node:worker-2"),
            "subject CN=system:node:worker-2, O=system:nodes is not "
            "CN=system:node:worker-1, O=system:nodes",
            id="another-nodes-cn",
        ),
        pytest.param(
            csr(organizations=("system:masters",)), "O=system:masters is not", id="wrong-o"
        ),
        pytest.param(
            csr(organizations=("system:nodes", "system:masters")),
            "O=system:nodes, O=system:masters is not",
            id="extra-o",
        ),
        pytest.param(csr(other_subject=("OU=x",)), "OU=x is not", id="extra-subject"),
        pytest.param(
            csr(usages=("digital signature", "key encipherment", "client auth")),
            "usages client auth, digital signature, key encipherment are not a serving",
            id="client-usages",
        ),
        pytest.param(csr(usages=(*SERVING, "client auth")), "are not a serving", id="extra-usage"),
        pytest.param(csr(usages=("server auth",)), "are not a serving", id="missing-usage"),
        pytest.param(
            csr(other_names=("email:a@b.c",)),
            "names other than DNS names and IPs: email:a@b.c",
            id="email-san",
        ),
        pytest.param(
            csr(dns_names=(), ip_addresses=()), "names no DNS name and no IP", id="no-san"
        ),
    ],
)
def test_what_the_request_alone_decides(request_: CertificateRequest, reason: str | None) -> None:
    verdict = request_verdict(request_)
    if reason is None:
        assert verdict is None
    else:
        assert verdict is not None and not verdict.approve and not verdict.retry
        assert reason in verdict.reason


@pytest.mark.parametrize(
    ("the_node", "reason", "retry"),
    [
        pytest.param(initialized(), None, False, id="initialized-by-this-ccm-goes-on"),
        pytest.param(
            initialized(provider_id="aws:///eu-west-1a/i-0abc"),
            "is not a Xen Orchestra VM (providerID aws:///eu-west-1a/i-0abc)",
            False,
            id="foreign-provider-id",
        ),
        pytest.param(node(NAME), "is not initialized yet", True, id="still-tainted"),
        pytest.param(
            initialized(provider_id=""), "is not initialized yet", True, id="no-provider-id"
        ),
    ],
)
def test_what_the_node_decides(the_node: Node, reason: str | None, retry: bool) -> None:
    verdict = node_verdict(csr(), the_node)
    if reason is None:
        assert verdict is None
    else:
        assert verdict is not None and not verdict.approve and verdict.retry is retry
        assert reason in verdict.reason


def test_a_node_that_does_not_exist_may_still_register() -> None:
    assert missing_node_verdict(csr()) == Verdict(
        approve=False, reason="node worker-1 does not exist", retry=True
    )


@pytest.mark.parametrize(
    ("request_", "the_node", "the_vm_", "options", "reason", "retry"),
    [
        pytest.param(csr(), initialized(), the_vm(), None, None, False, id="approved"),
        pytest.param(
            csr(ip_addresses=("2001:db8:0:0::5", "10.0.0.5")),
            initialized(),
            the_vm(),
            None,
            None,
            False,
            id="ipv6-compared-as-addresses",
        ),
        pytest.param(
            csr(ip_addresses=("10.0.0.5", "10.0.0.66")),
            initialized(),
            the_vm(),
            None,
            "IP address(es) 10.0.0.66 are not among VM",
            True,
            id="an-ip-the-vm-does-not-report",
        ),
        pytest.param(
            csr(),
            initialized(),
            the_vm(addresses={}, main_ip_address=None),
            None,
            "reports no IP address yet",
            True,
            id="guest-tools-not-reporting-yet",
        ),
        pytest.param(
            csr(dns_names=(NAME, "kubernetes.default.svc")),
            initialized(),
            the_vm(),
            None,
            "DNS name(s) kubernetes.default.svc are not the node's (worker-1)",
            False,
            id="a-name-that-is-not-the-nodes",
        ),
        pytest.param(
            csr(dns_names=(NAME, "evil.example.com")),
            initialized(addresses=(NodeAddress(AddressType.HOSTNAME, "evil.example.com"),)),
            the_vm(),
            None,
            "DNS name(s) evil.example.com are not the node's",
            False,
            id="a-hostname-the-kubelet-wrote-into-its-status-is-not-trusted",
        ),
        pytest.param(
            csr(),
            initialized(),
            the_vm(power_state=PowerState.HALTED),
            None,
            "is halted, not running",
            True,
            id="vm-not-running",
        ),
        pytest.param(
            csr(ip_addresses=("2001:db8::5",)),
            initialized(),
            the_vm(),
            AddressOptions(internal_cidrs=(ipaddress.ip_network("10.0.0.0/8"),)),
            None,
            False,
            id="address-options-do-not-narrow-what-xo-reports",
        ),
    ],
)
def test_what_the_vm_decides(
    request_: CertificateRequest,
    the_node: Node,
    the_vm_,  # type: ignore[no-untyped-def]
    options: AddressOptions | None,
    reason: str | None,
    retry: bool,
) -> None:
    verdict = address_verdict(request_, node=the_node, vm=the_vm_, options=options)
    assert verdict.approve is (reason is None)
    if reason is not None:
        assert reason in verdict.reason and verdict.retry is retry


# -- the service -------------------------------------------------------------------
class Approver(World):
    """Pool A, host 1, the kubelet's VM; the container's CSR approval service."""

    def __init__(self) -> None:
        super().__init__(ONE_HOST)
        self.csrs = self.certificate_requests
        self.xo.add_vm(the_vm())

    @property
    def service(self) -> CSRApprovalService:
        return self.csr_approval

    def pending_events(self) -> list[str]:
        return [e.message for e in self.events.events if e.reason == PENDING_EVENT]


async def test_a_kubelets_request_is_approved_against_the_vm_read_just_now() -> None:
    w = Approver()
    w.nodes.create(initialized())
    w.csrs.file(csr())

    review = await w.service.review(name="csr-1")

    assert review.decision is Decision.APPROVED
    assert w.csrs.requests["csr-1"].state is CSRState.APPROVED
    ((name, reason, message),) = w.csrs.approvals
    assert (name, reason) == ("csr-1", "XenOrchestraCCMApproved")
    assert VM_1 in message
    assert w.xo.requests["get_vm"] == 1  # by id, from XO: not a snapshot
    assert w.events.events == []


async def test_a_request_left_pending_says_why_once_per_reason_on_the_node() -> None:
    w = Approver()
    w.nodes.create(initialized())
    w.csrs.file(csr(ip_addresses=("10.0.0.66",)))

    first = await w.service.review(name="csr-1")
    again = await w.service.review(name="csr-1")

    assert first.decision is again.decision is Decision.PENDING and first.retry
    assert w.csrs.approvals == [] and w.csrs.requests["csr-1"].state is CSRState.PENDING
    (message,) = w.pending_events()
    assert "csr-1 not approved: IP address(es) 10.0.0.66 are not among VM" in message
    assert w.events.events[0].type is EventType.WARNING

    w.xo.update_vm(VM_1, addresses={**GUEST, "1/ipv4/0": "10.0.0.66"})  # the new NIC is up
    assert (await w.service.review(name="csr-1")).decision is Decision.APPROVED
    assert len(w.pending_events()) == 1


async def test_a_different_reason_is_said_again() -> None:
    w = Approver()
    w.nodes.create(node(NAME))  # not initialized yet
    w.csrs.file(csr(ip_addresses=("10.0.0.66",)))
    await w.service.review(name="csr-1")
    w.nodes.nodes[NAME] = initialized()
    await w.service.review(name="csr-1")
    reasons = w.pending_events()
    assert len(reasons) == 2
    assert "not initialized yet" in reasons[0] and "10.0.0.66" in reasons[1]


async def test_nothing_is_asked_of_xo_before_the_request_and_the_node_pass() -> None:
    w = Approver()
    w.nodes.create(node(NAME))
    w.csrs.file(csr(usages=("client auth",)))
    w.csrs.file(csr(name="csr-2", uid="u2"))
    assert (await w.service.review(name="csr-1")).retry is False
    assert (await w.service.review(name="csr-2")).retry is True
    assert w.xo.requests["get_vm"] == 0


async def test_an_approval_rests_on_an_answer_no_change_event_overtook() -> None:
    """A change event for the VM arrives while its read is on the way (the address may
    just have been removed): that answer approves nothing, XO is asked again."""
    w = Approver()
    freshness = w.container.freshness()  # the ledger the service judges by
    w.nodes.create(initialized())
    w.csrs.file(csr())
    real_get_vm = w.xo.get_vm
    reads: list[int] = []

    async def get_vm_overtaken_once(**kwargs: object):  # type: ignore[no-untyped-def]
        reads.append(1)
        if len(reads) == 1:
            freshness.announce(VM_1)  # the change router heard of the VM meanwhile
        return await real_get_vm(**kwargs)  # type: ignore[arg-type]

    w.xo.get_vm = get_vm_overtaken_once  # type: ignore[method-assign]
    assert (await w.service.review(name="csr-1")).decision is Decision.APPROVED
    assert len(reads) == 2


async def test_answers_overtaken_every_time_approve_nothing() -> None:
    w = Approver()
    freshness = w.container.freshness()  # the ledger the service judges by
    w.nodes.create(initialized())
    w.csrs.file(csr())
    real_get_vm = w.xo.get_vm

    async def always_overtaken(**kwargs: object):  # type: ignore[no-untyped-def]
        freshness.announce(VM_1)
        return await real_get_vm(**kwargs)  # type: ignore[arg-type]

    w.xo.get_vm = always_overtaken  # type: ignore[method-assign]
    review = await w.service.review(name="csr-1")
    assert review.decision is Decision.PENDING and review.retry
    assert "kept changing" in review.reason and w.csrs.approvals == []


async def test_xo_unreachable_leaves_it_pending_to_retry() -> None:
    w = Approver()
    w.nodes.create(initialized())
    w.csrs.file(csr())
    w.xo.fail_with = InventoryError("XO down")
    review = await w.service.review(name="csr-1")
    assert review.decision is Decision.PENDING and review.retry
    assert "cannot tell VM" in review.reason and "XO down" in review.reason


async def test_another_signers_or_a_decided_request_is_left_alone() -> None:
    w = Approver()
    w.nodes.create(initialized())
    w.csrs.file(csr(signer_name="kubernetes.io/kube-apiserver-client-kubelet"))
    w.csrs.file(csr(name="csr-2", state=CSRState.DENIED))
    w.csrs.file(csr(name="csr-3", state=CSRState.APPROVED))
    for name in ("csr-1", "csr-2", "csr-3"):
        assert (await w.service.review(name=name)).decision is Decision.IGNORED
    assert (await w.service.review(name="gone")).decision is Decision.GONE
    assert w.csrs.approvals == [] and w.events.events == [] and w.xo.requests["get_vm"] == 0


async def test_a_request_from_no_node_is_logged_without_an_event() -> None:
    w = Approver()
    w.csrs.file(csr(username="system:anonymous"))
    review = await w.service.review(name="csr-1")
    assert review.decision is Decision.PENDING and not review.retry
    assert w.events.events == []


async def test_a_request_decided_by_someone_else_meanwhile_is_not_approved_over_it() -> None:
    w = Approver()
    w.nodes.create(initialized())
    w.csrs.file(csr())
    real_get = w.csrs.get

    async def get_then_deny(*, name: str) -> CertificateRequest | None:
        found = await real_get(name=name)
        w.csrs.set_state(name, CSRState.DENIED)  # another approver, between read and write
        return found

    w.csrs.get = get_then_deny  # type: ignore[method-assign]
    assert (await w.service.review(name="csr-1")).decision is Decision.IGNORED
    assert w.csrs.approvals == [] and w.csrs.requests["csr-1"].state is CSRState.DENIED


async def test_a_request_replaced_under_its_name_is_gone() -> None:
    w = Approver()
    w.nodes.create(initialized())
    w.csrs.file(csr())
    stale = w.csrs.requests["csr-1"]
    w.csrs.delete("csr-1")
    w.csrs.file(csr(uid="another"))
    real_get = w.csrs.get

    async def stale_get(*, name: str) -> CertificateRequest | None:
        await real_get(name=name)
        return stale

    w.csrs.get = stale_get  # type: ignore[method-assign]
    assert (await w.service.review(name="csr-1")).decision is Decision.GONE
    assert w.csrs.approvals == []


# -- the controller ------------------------------------------------------------------
def test_star_leaves_the_approver_off_and_naming_it_turns_it_on() -> None:
    assert "cloud-node-csr-approval" not in parse_controllers("*")
    assert Settings().controllers == DEFAULT_CONTROLLERS
    assert parse_controllers("*,cloud-node-csr-approval")[-1] == "cloud-node-csr-approval"


async def test_off_by_default_nothing_about_csrs_is_built() -> None:
    h = controllers_world()
    assert h.container.controllers().csr_approval is None
    assert "cloud-node-csr-approval" not in [r.name for r in h.container.runnables()]


async def test_the_controller_approves_as_requests_come_and_retries_with_backoff() -> None:
    controllers = (*DEFAULT_CONTROLLERS, "cloud-node-csr-approval")
    h = controllers_world(controllers=controllers)
    csrs: InMemoryCertificateRequests = h.container.certificate_requests()
    h.xo.add_vm(the_vm())
    async with h:
        h.nodes.create(node(NAME, system_uuid=VM_1))  # the cloud-node controller initializes it
        h.xo.update_vm(VM_1, addresses={}, main_ip_address=None)  # guest tools not up yet
        csrs.file(csr())
        await h.clock.advance(0.01)
        assert csrs.requests["csr-1"].state is CSRState.PENDING
        assert not h.nodes.nodes[NAME].has_taint(L.UNINITIALIZED_TAINT_KEY)
        asked = h.xo.requests["get_vm"]
        await h.clock.advance(0.4)  # under the first backoff step (0.5 s): not asked again
        assert h.xo.requests["get_vm"] == asked
        h.xo.update_vm(VM_1, addresses=GUEST, main_ip_address="10.0.0.5")
        await h.clock.advance(1.0)
        assert csrs.requests["csr-1"].state is CSRState.APPROVED
        await asyncio.sleep(0)
    pending = [e for e in h.events.events if e.reason == PENDING_EVENT]
    assert len(pending) == 1 and "reports no IP address yet" in pending[0].message
