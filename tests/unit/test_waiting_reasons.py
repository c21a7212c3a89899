"""A reason on every waiting Node: the cause -> event policy (a table), and each cause
through the registration service on the in-memory adapters."""

from __future__ import annotations

import pytest

from domain import labels as L
from domain.errors import (
    AmbiguousVMError,
    AuthenticationError,
    CCMError,
    ConflictError,
    InventoryError,
    NodeGoneError,
    OvertakenError,
    ProtocolError,
    ProvidedNodeIPMismatchError,
    ProviderIDError,
    RetryLater,
    TLSHandshakeError,
    UnavailableError,
    VMNotFoundError,
)
from domain.model import Node
from domain.options import CCMOptions
from domain.policies.system_uuid import swap_little_endian
from domain.policies.waiting import REASONS, waiting_reason
from tests.world import AT_ONCE, ONE_POOL, World

from .factories import POOL_A, VM_1, VM_2, node, vm

PID = f"xenorchestra://{POOL_A}/{VM_1}"
SWAPPED = swap_little_endian(VM_1)
TLS = (
    "Xen Orchestra GET /vms/{id}: TLS handshake with https://xo failed ([SSL: "
    "CERTIFICATE_VERIFY_FAILED] unable to get local issuer certificate); set caFile to the CA "
    "that signed XO's certificate, or insecure: true to skip verification"
)
REFUSED = (
    "Xen Orchestra refused GET /vms/{id} (401 invalid credentials): the token (or user) "
    "must belong to a Xen Orchestra admin"
)


# -- the policy ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("the_node", "err", "reason", "message"),
    [
        pytest.param(
            node(provider_id=PID),
            VMNotFoundError(VM_1, tried=(f"providerID {PID}",)),
            "VMNotFound",
            f"no VM found in Xen Orchestra (tried providerID {PID})",
            id="not-found-by-provider-id",
        ),
        pytest.param(
            node(),
            VMNotFoundError(
                VM_1,
                "node worker-1: no VM found (...)",
                tried=(f"systemUUID {VM_1}", f"little-endian systemUUID {SWAPPED}"),
            ),
            "VMNotFound",
            f"no VM found in Xen Orchestra (tried systemUUID {VM_1}, "
            f"little-endian systemUUID {SWAPPED})",
            id="not-found-by-uuid",
        ),
        pytest.param(
            node(system_uuid=""),
            VMNotFoundError("worker-1", tried=("name_label 'worker-1'",)),
            "VMNotFound",
            "no VM found in Xen Orchestra (tried name_label 'worker-1')",
            id="not-found-by-name",
        ),
        pytest.param(
            node(system_uuid=""),
            VMNotFoundError("worker-1", "node worker-1: no VM found (no providerID...)"),
            "VMNotFound",
            "no VM to look for: the node has neither a providerID nor a systemUUID",
            id="nothing-to-look-for",
        ),
        pytest.param(
            node(system_uuid=""),
            AmbiguousVMError(
                f"node worker-1: 2 VMs are named 'worker-1' ({VM_2}, {VM_1}); refusing to guess",
                vm_ids=(VM_2, VM_1),
            ),
            "AmbiguousVM",
            f"node worker-1: 2 VMs are named 'worker-1' ({VM_2}, {VM_1}); refusing to guess",
            id="several-vms-match",
        ),
        pytest.param(
            node(),
            UnavailableError(
                "Xen Orchestra GET /vms/{id} failed after 7 attempt(s) in 60.2s: "
                "ConnectError: [Errno 111] Connection refused",
                detail="GET /vms/{id}: ConnectError: [Errno 111] Connection refused",
            ),
            "XenOrchestraUnreachable",
            "Xen Orchestra did not answer GET /vms/{id}: ConnectError: [Errno 111] "
            "Connection refused",
            id="xo-unreachable",
        ),
        pytest.param(node(), TLSHandshakeError(TLS), "XenOrchestraTLSFailed", TLS, id="tls"),
        pytest.param(
            node(),
            AuthenticationError(REFUSED, status=401),
            "XenOrchestraAuthRefused",
            REFUSED,
            id="token-refused",
        ),
        pytest.param(
            node(),
            ProtocolError("Xen Orchestra GET /vms/{id}: the body is not JSON (text/html, 9 bytes)"),
            "XenOrchestraError",
            "Xen Orchestra GET /vms/{id}: the body is not JSON (text/html, 9 bytes)",
            id="xo-answers-nonsense",
        ),
        pytest.param(
            node(),
            ProvidedNodeIPMismatchError(
                "worker-1",
                "provided node IP(s) 10.9.9.9 not among the VM's addresses (10.1.6.166)",
            ),
            "ProvidedNodeIPMismatch",
            "provided node IP(s) 10.9.9.9 not among the VM's addresses (10.1.6.166)",
            id="provided-ip-mismatch",
        ),
        pytest.param(
            node(provider_id="xenorchestra://pool/not-a-uuid"),
            ProviderIDError("providerID 'xenorchestra://pool/not-a-uuid': bad VM uuid"),
            "InvalidProviderID",
            "providerID 'xenorchestra://pool/not-a-uuid' cannot be parsed (providerID "
            "'xenorchestra://pool/not-a-uuid': bad VM uuid); it is immutable: delete the Node "
            "and fix kubelet's --provider-id",
            id="malformed-provider-id",
        ),
    ],
)
def test_each_cause_has_one_reason_and_one_line(
    the_node: Node, err: CCMError, reason: str, message: str
) -> None:
    why = waiting_reason(the_node, err)

    assert why is not None
    assert (why.reason, why.message) == (reason, "Waiting to initialize: " + message)
    assert why.reason in REASONS
    assert "\n" not in why.message


@pytest.mark.parametrize(
    "err",
    [
        pytest.param(RetryLater("node worker-1: XO's answers kept changing"), id="overtaken"),
        pytest.param(OvertakenError("kept changing"), id="overtaken-error"),
        pytest.param(ConflictError("still conflicting"), id="kubernetes-conflict"),
        pytest.param(NodeGoneError("node worker-1 was deleted"), id="node-gone"),
    ],
)
def test_failures_that_are_not_the_nodes_to_explain_give_no_event(err: CCMError) -> None:
    assert waiting_reason(node(), err) is None


def test_a_cause_reads_the_same_at_every_attempt() -> None:
    """The recorder folds identical events into one whose count goes up."""
    attempts = [
        UnavailableError(
            f"Xen Orchestra GET /vms/{{id}} failed after {n} attempt(s) in {n * 9.7:.1f}s: "
            "timed out after 30.0s",
            detail="GET /vms/{id}: timed out after 30.0s",
        )
        for n in (3, 7)
    ]

    first, second = (waiting_reason(node(), err) for err in attempts)

    assert first == second


def test_a_multi_line_cause_is_folded_into_one_line() -> None:
    why = waiting_reason(node(), InventoryError("Xen Orchestra GET /vms/{id}: 400 bad\nrequest"))

    assert why is not None and why.message.endswith("400 bad request")


# -- each cause through the registration service ------------------------------------------
class Waiting(World):
    def __init__(self, options: CCMOptions | None = None) -> None:
        super().__init__(ONE_POOL, options=options or AT_ONCE)

    async def attempt(self, the_node: Node, raises: type[CCMError]) -> list[tuple[str, str]]:
        """One sync attempt that fails: the warnings it recorded on the node."""
        if the_node.name not in self.nodes.nodes:
            self.nodes.create(the_node)
        before = len(self.events.events)
        with pytest.raises(raises):
            await self.registration.sync(name=the_node.name)
        assert self.nodes.nodes[the_node.name].has_taint(L.UNINITIALIZED_TAINT_KEY)
        recorded = self.events.events[before:]
        assert {(e.node, e.type.value, e.source) for e in recorded} <= {
            (the_node.name, "Warning", "cloud-node-controller")
        }
        return [(e.reason, e.message) for e in recorded]


@pytest.mark.parametrize(
    ("the_node", "reason", "says"),
    [
        pytest.param(node(provider_id=PID), "VMNotFound", f"providerID {PID}", id="provider-id"),
        pytest.param(node(), "VMNotFound", f"little-endian systemUUID {SWAPPED}", id="uuid"),
    ],
)
async def test_a_node_whose_vm_is_not_found_is_told_what_was_tried(
    the_node: Node, reason: str, says: str
) -> None:
    w = Waiting()

    ((got, message),) = await w.attempt(the_node, VMNotFoundError)

    assert got == reason and says in message


async def test_a_node_not_found_by_name_either_says_so() -> None:
    w = Waiting(CCMOptions(match_by_name=True))

    ((reason, message),) = await w.attempt(node(system_uuid=""), VMNotFoundError)

    assert reason == "VMNotFound"
    assert (
        message == "Waiting to initialize: no VM found in Xen Orchestra (tried name_label "
        "'worker-1')"
    )


async def test_a_node_matching_several_vms_by_name_names_them() -> None:
    w = Waiting(CCMOptions(match_by_name=True))
    w.xo.add_vm(vm(id=VM_1))
    w.xo.add_vm(vm(id=VM_2))

    ((reason, message),) = await w.attempt(node(system_uuid=""), AmbiguousVMError)

    assert reason == "AmbiguousVM" and VM_1 in message and VM_2 in message


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param(
            UnavailableError("x", detail="GET /vms/{id}: timed out after 30.0s"),
            "XenOrchestraUnreachable",
            id="unreachable",
        ),
        pytest.param(TLSHandshakeError(TLS), "XenOrchestraTLSFailed", id="tls"),
        pytest.param(AuthenticationError(REFUSED, status=401), "XenOrchestraAuthRefused", id="401"),
    ],
)
async def test_a_node_waiting_on_xo_says_why(failure: InventoryError, reason: str) -> None:
    w = Waiting()
    w.xo.add_vm(vm())
    w.xo.fail_with = failure

    ((got, _),) = await w.attempt(node(), type(failure))

    assert got == reason


async def test_a_provided_node_ip_the_vm_lacks_is_named_once_per_attempt() -> None:
    w = Waiting()
    w.xo.add_vm(vm())
    the_node = node(annotations={L.PROVIDED_NODE_IP: "10.9.9.9"})

    first = await w.attempt(the_node, ProvidedNodeIPMismatchError)
    second = await w.attempt(the_node, ProvidedNodeIPMismatchError)

    assert (
        first
        == second
        == [
            (
                "ProvidedNodeIPMismatch",
                "Waiting to initialize: provided node IP(s) 10.9.9.9 not among the VM's "
                "addresses (10.1.6.166)",
            )
        ]
    )


async def test_a_malformed_provider_id_is_named() -> None:
    w = Waiting()

    ((reason, message),) = await w.attempt(
        node(provider_id="xenorchestra://pool-a/not-a-uuid"), ProviderIDError
    )

    assert reason == "InvalidProviderID" and "xenorchestra://pool-a/not-a-uuid" in message


async def test_the_event_clears_nothing_and_an_initialized_node_gets_no_more() -> None:
    w = Waiting()
    await w.attempt(node(), VMNotFoundError)

    w.xo.add_vm(vm())
    await w.registration.sync(name="worker-1")
    await w.registration.sync(name="worker-1")

    assert w.events.reasons() == ["VMNotFound", "Synced"]
    assert not w.nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)
