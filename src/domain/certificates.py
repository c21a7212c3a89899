"""Certificate signing requests as the CSR approver reads them.

A kubelet started with ``serverTLSBootstrap: true`` files a
``kubernetes.io/kubelet-serving`` CSR (certificates.k8s.io/v1) for the certificate
of its HTTPS port, as ``system:node:<name>`` in the group ``system:nodes``. The
API server records who asked (``spec.username``/``groups``); what is asked for
(subject, names, addresses) is inside the PEM request, which the Kubernetes
adapter decodes into this value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"


class CSRState(StrEnum):
    """Where a CSR stands, from its conditions (a CSR without any is pending)."""

    PENDING = "Pending"
    APPROVED = "Approved"
    DENIED = "Denied"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """The fields of a CSR the approver judges, nothing more.

    ``common_name`` … ``other_names`` come from the PEM ``spec.request``;
    ``request_problem`` says why it could not be decoded (then they are empty).
    ``other_names`` are SANs of other kinds (e-mail addresses, URIs), which a
    serving certificate never holds.
    """

    name: str
    uid: str = ""
    resource_version: str = ""
    signer_name: str = KUBELET_SERVING_SIGNER
    username: str = ""
    groups: tuple[str, ...] = ()
    usages: tuple[str, ...] = ()
    state: CSRState = CSRState.PENDING
    common_name: str = ""
    organizations: tuple[str, ...] = ()
    #: subject attributes other than CN and O (``OU=…``), which a kubelet never sets
    other_subject: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()
    request_problem: str = ""
    created_at: datetime | None = None

    @property
    def kubelet_serving(self) -> bool:
        return self.signer_name == KUBELET_SERVING_SIGNER

    @property
    def node_name(self) -> str:
        """The node a ``system:node:<name>`` requestor is, else ""."""
        if not self.username.startswith(NODE_USER_PREFIX):
            return ""
        return self.username.removeprefix(NODE_USER_PREFIX)
