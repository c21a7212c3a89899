"""Typed failures the services tell apart.

The distinction that matters most is between "the VM is deleted" and "we could
not tell": only the first may ever lead to a Node being deleted.
"""

from __future__ import annotations

from collections.abc import Sequence


class CCMError(Exception):
    """Base of every error the domain knows about."""


class ProviderIDError(CCMError, ValueError):
    """A providerID string that claims to be ours but cannot be parsed."""


class InventoryError(CCMError):
    """XO could not answer: unreachable, refused, malformed answer, timeout.

    Never evidence that a VM is gone.
    """


class AuthenticationError(InventoryError):
    """XO refused the credentials (401) or the privilege (403): ``status`` says which."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnavailableError(InventoryError):
    """XO did not answer usefully within the retry deadline (connection, timeout, 5xx).

    ``detail`` is the endpoint and the last failure without the attempt count and
    time, so that repeated failures read the same (events about them fold into one).
    """

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message


class TLSHandshakeError(InventoryError):
    """XO's certificate was refused (untrusted CA, wrong name, expired): retrying cannot
    fix it. The XO adapter raises its own subclass; the domain needs no text to tell."""


class ProtocolError(InventoryError):
    """XO answered something that is not what its API documents."""


class VMNotFoundError(InventoryError):
    """XO has no VM with this id, and nothing proves it was deleted.

    Raised when the caller named no pool to confirm the absence with.
    """

    def __init__(
        self, vm_id: str, message: str | None = None, *, tried: Sequence[str] = ()
    ) -> None:
        super().__init__(message or f"VM {vm_id} not found in Xen Orchestra")
        self.vm_id = vm_id
        #: how the VM was looked for (``providerID ...``, ``systemUUID ...``...), in order
        self.tried = tuple(tried)


def _pools(pools: Sequence[str]) -> str:
    return f"pool {pools[0]}" if len(pools) == 1 else f"pools {', '.join(pools)}"


class VMDeletedError(VMNotFoundError):
    """The VM is gone while every pool it was placed in is still known to XO: deleted."""

    def __init__(self, vm_id: str, pools: Sequence[str]) -> None:
        super().__init__(vm_id, f"VM {vm_id} no longer exists in {_pools(pools)}")
        self.pools = tuple(pools)


class PoolUnavailableError(VMNotFoundError):
    """The VM is unknown and so is a pool it was placed in: XO lost that pool.

    XO drops every object of a pool it is disconnected from, so this is an
    outage, not a deletion. ``pools`` are the unknown ones.
    """

    def __init__(
        self,
        vm_id: str,
        pools: Sequence[str],
        message: str | None = None,
        *,
        without_vms: Sequence[str] = (),
    ) -> None:
        unknown = _pools(pools)
        super().__init__(
            vm_id,
            message
            or f"VM {vm_id} not found and its {unknown} {'is' if len(pools) == 1 else 'are'} "
            "unknown to Xen Orchestra (pool disconnected, or its VMs not loaded?): "
            "not treated as deleted",
        )
        self.pools = tuple(pools)
        #: those of ``pools`` XO holds without listing their VMs (not loaded, or hidden
        #: from the credentials by XO's ACLs)
        self.without_vms = tuple(without_vms)


class VMWhereaboutsUnknownError(PoolUnavailableError):
    """The VM is unknown, this process never saw where XO placed it, and XO has lost
    one of its pools: the VM may have moved there (its node naming an older pool)."""

    def __init__(self, vm_id: str, pools: Sequence[str], lost: Sequence[str]) -> None:
        super().__init__(
            vm_id,
            pools,
            f"VM {vm_id} not found, never seen by this CCM, and Xen Orchestra's connection "
            f"to {', '.join(lost)} is not up (the VM may have moved there): not treated as "
            "deleted",
        )


class AmbiguousVMError(InventoryError):
    """Several VMs match a node by name: refusing to guess (``vm_ids`` says which)."""

    def __init__(self, message: str, *, vm_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.vm_ids = tuple(vm_ids)


class RetryLater(CCMError):
    """The node cannot be initialized yet; the controller requeues it with backoff."""


class ProvidedNodeIPMismatchError(RetryLater):
    """kubelet's ``--node-ip`` names an address the VM does not report: initializing
    now would write the wrong addresses. ``detail`` says which, and what the VM has."""

    def __init__(self, node_name: str, detail: str) -> None:
        super().__init__(f"node {node_name}: {detail}")
        self.detail = detail


class NodeStoreError(CCMError):
    """The Kubernetes API could not complete a request."""


class ConflictError(NodeStoreError):
    """The Node changed since it was read (resourceVersion mismatch)."""


class NodeGoneError(NodeStoreError):
    """The Node no longer exists (or has another uid)."""


class InvalidNodeError(CCMError):
    """The Node object carries something the CCM cannot act on."""


class BreakerStoreError(CCMError):
    """The deletion breaker's state could not be read or written: no deletion happens."""


class BreakerConflictError(BreakerStoreError):
    """Someone else wrote the breaker's state since it was read (a reset, another replica)."""


class OvertakenError(CCMError):
    """Every answer XO gave was overtaken by a newer one before it could be written
    (``domain.freshness``): the work is retried later, from a newer answer."""


class CertificateRequestError(CCMError):
    """A certificate signing request could not be read or approved."""


class CertificateRequestGoneError(CertificateRequestError):
    """The CSR no longer exists (or the name is another CSR's now)."""


class CertificateRequestConflictError(CertificateRequestError):
    """The CSR changed since it was read: read it again and decide again."""
