"""Kubelet serving CSRs as a kubelet files them: real PEM requests, sent as the node.

A kubelet authenticates with a client certificate ``CN=system:node:<name>,
O=system:nodes`` signed by the cluster CA; the API server records that identity
in the CSR's ``spec.username``/``groups``, which is what the approver trusts. Here
the control plane's own CA issues that certificate, and the request is built with
``cryptography`` as Go's ``x509.CreateCertificateRequest`` builds the kubelet's
(an ECDSA P-256 key: usages digital signature + server auth).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.kubernetes import KubeClient, connect
from entrypoints.testkits.local_cluster.pki import CertificateAuthority

from .controlplane import ControlPlane, write_kubeconfig
from .kube import apply_object

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
ECDSA_SERVING = ("digital signature", "server auth")


def serving_request(
    node: str,
    *,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    common_name: str | None = None,
    organizations: Sequence[str] = ("system:nodes",),
    emails: Sequence[str] = (),
    units: Sequence[str] = (),
) -> bytes:
    """A PEM certificate request (the kubelet's shape unless told otherwise)."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"system:node:{node}"))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    names += [x509.RFC822Name(e) for e in emails]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


async def allow_nodes_to_request(kube: KubeClient) -> None:
    """What kubeadm grants kubelets: create (and read) CSRs (``system:node-bootstrapper``)."""
    await apply_object(
        kube,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "xoccm-test:nodes-request-certificates"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:node-bootstrapper",
            },
            "subjects": [
                {"kind": "Group", "name": "system:nodes", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    )


async def kubelet_client(control_plane: ControlPlane, node: str) -> KubeClient:
    """A client authenticated as node ``node`` (close it)."""
    pki = control_plane.workdir / "pki"
    pair = CertificateAuthority.existing(pki).issue(
        f"kubelet-{node}", common_name=f"system:node:{node}", organizations=("system:nodes",)
    )
    path: Path = write_kubeconfig(
        control_plane.workdir / f"kubelet-{node}.kubeconfig",
        server=control_plane.server,
        ca_file=control_plane.ca_file,
        user=f"system:node:{node}",
        client=pair,
    )
    return await connect(str(path), name=f"kubelet-{node}")


async def file_request(
    client: KubeClient,
    name: str,
    pem: bytes,
    *,
    usages: Sequence[str] = ECDSA_SERVING,
    signer: str = KUBELET_SERVING,
) -> dict[str, Any]:
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": signer,
            "usages": list(usages),
        },
    }
    return await client.request("POST", CSRS, body=body)


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The CSR's conditions by type."""
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
