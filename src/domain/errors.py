"""Typed failures the services tell apart.

The distinction that matters most is between "the VM is deleted" and "we could
not tell": only the first may ever lead to a Node being deleted.
"""

from __future__ import annotations


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
    """XO did not answer usefully within the retry deadline (connection, timeout, 5xx)."""


class ProtocolError(InventoryError):
    """XO answered something that is not what its API documents."""


class VMNotFoundError(InventoryError):
    """XO has no VM with this id, and nothing proves it was deleted.

    Raised when the VM's pool is not known to the caller (no pool id to check).
    """

    def __init__(self, vm_id: str, message: str | None = None) -> None:
        super().__init__(message or f"VM {vm_id} not found in Xen Orchestra")
        self.vm_id = vm_id


class VMDeletedError(VMNotFoundError):
    """The VM is gone while its pool is still known to XO: it was deleted."""

    def __init__(self, vm_id: str, pool_id: str) -> None:
        super().__init__(vm_id, f"VM {vm_id} no longer exists in pool {pool_id}")
        self.pool_id = pool_id


class PoolUnavailableError(VMNotFoundError):
    """The VM and its pool are both unknown to XO: XO lost the pool.

    XO drops every object of a pool it is disconnected from, so this is an
    outage, not a deletion.
    """

    def __init__(self, vm_id: str, pool_id: str) -> None:
        super().__init__(
            vm_id,
            f"VM {vm_id} not found and its pool {pool_id} is unknown to Xen Orchestra "
            "(pool disconnected?): not treated as deleted",
        )
        self.pool_id = pool_id


class AmbiguousVMError(InventoryError):
    """Several VMs match a node by name: refusing to guess."""


class NodeStoreError(CCMError):
    """The Kubernetes API could not complete a request."""


class ConflictError(NodeStoreError):
    """The Node changed since it was read (resourceVersion mismatch)."""


class NodeGoneError(NodeStoreError):
    """The Node no longer exists (or has another uid)."""


class InvalidNodeError(CCMError):
    """The Node object carries something the CCM cannot act on."""
