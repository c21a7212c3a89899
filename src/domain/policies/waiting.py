"""Why a node still waits for initialization, as the Warning event ``kubectl describe
node`` shows: one reason and one line per failed attempt.

Without it, a node whose VM is not found, or whose XO is unreachable or refuses the
CCM, stays tainted with no word on the Node (only a log line, an alert and
``doctor`` tell). The cause comes from the error's type, never from its text; the
message is built to read the same at every attempt while the cause is the same, so
the recorder folds repeats into one Event whose count goes up.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import (
    AmbiguousVMError,
    AuthenticationError,
    CCMError,
    InventoryError,
    ProvidedNodeIPMismatchError,
    ProviderIDError,
    TLSHandshakeError,
    UnavailableError,
    VMNotFoundError,
)
from domain.model import Node

PREFIX = "Waiting to initialize: "

VM_NOT_FOUND = "VMNotFound"
AMBIGUOUS_VM = "AmbiguousVM"
XO_UNREACHABLE = "XenOrchestraUnreachable"
XO_TLS = "XenOrchestraTLSFailed"
XO_REFUSED = "XenOrchestraAuthRefused"
XO_ERROR = "XenOrchestraError"
PROVIDED_IP_MISMATCH = "ProvidedNodeIPMismatch"
INVALID_PROVIDER_ID = "InvalidProviderID"

#: Every reason :func:`waiting_reason` may give (docs and tests list them).
REASONS = (
    VM_NOT_FOUND,
    AMBIGUOUS_VM,
    XO_UNREACHABLE,
    XO_TLS,
    XO_REFUSED,
    XO_ERROR,
    PROVIDED_IP_MISMATCH,
    INVALID_PROVIDER_ID,
)


@dataclass(frozen=True, slots=True)
class WaitingReason:
    """A Warning event on the waiting Node: its reason and its one-line message."""

    reason: str
    message: str


def _not_found(node: Node, err: VMNotFoundError) -> str:
    if err.tried:
        return f"no VM found in Xen Orchestra (tried {', '.join(err.tried)})"
    if not node.provider_id and not node.system_uuid.strip():
        return "no VM to look for: the node has neither a providerID nor a systemUUID"
    return f"no VM found in Xen Orchestra ({err})"


def _explain(node: Node, err: CCMError) -> tuple[str, str] | None:
    if isinstance(err, ProvidedNodeIPMismatchError):
        return PROVIDED_IP_MISMATCH, err.detail
    if isinstance(err, ProviderIDError):
        return (
            INVALID_PROVIDER_ID,
            f"providerID {node.provider_id!r} cannot be parsed ({err}); it is immutable: "
            "delete the Node and fix kubelet's --provider-id",
        )
    if isinstance(err, AmbiguousVMError):
        return AMBIGUOUS_VM, str(err)
    if isinstance(err, VMNotFoundError):
        return VM_NOT_FOUND, _not_found(node, err)
    if isinstance(err, TLSHandshakeError):
        return XO_TLS, str(err)
    if isinstance(err, AuthenticationError):
        return XO_REFUSED, str(err)
    if isinstance(err, UnavailableError):
        return XO_UNREACHABLE, f"Xen Orchestra did not answer {err.detail}"
    if isinstance(err, InventoryError):
        return XO_ERROR, str(err)
    return None  # the Kubernetes side, or answers that kept changing: nothing to tell


def waiting_reason(node: Node, err: CCMError) -> WaitingReason | None:
    """The Warning event explaining why ``node`` was not initialized by this attempt,
    or None when the failure is not the node's to explain (a Kubernetes write that
    failed, XO's answers overtaken while planning: the next attempt succeeds)."""
    explained = _explain(node, err)
    if explained is None:
        return None
    reason, text = explained
    return WaitingReason(reason, PREFIX + " ".join(text.split()))
