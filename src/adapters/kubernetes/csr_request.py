"""The PEM certificate request inside a CSR, decoded with ``cryptography``.

Imported only by the CSR approver, when it converts its first CSR: the package
costs a process about 9 MiB for its whole life (README), which a CCM without the
approver (the default) never pays. What is read: the subject's common name,
organizations and other attributes, and the subject alternative names by kind.
Nothing here decides anything (``domain.policies.kubelet_serving`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    common_name: str = ""
    organizations: tuple[str, ...] = ()
    other_subject: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()
    problem: str = ""


def _other_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def decode_request(pem: bytes) -> DecodedRequest:
    """What the request asks for, or ``problem`` (one line) when it cannot be read."""
    try:
        request = x509.load_pem_x509_csr(pem)
    except ValueError:
        return DecodedRequest(problem="not a PEM certificate request")
    try:
        if not request.is_signature_valid:
            return DecodedRequest(problem="its signature does not verify")
        subject = request.subject
        common_names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if len(common_names) > 1:
            return DecodedRequest(problem=f"{len(common_names)} common names in the subject")
        organizations = tuple(
            str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        )
        other_subject = tuple(
            attribute.rfc4514_string()
            for attribute in subject
            if attribute.oid not in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME)
        )
        try:
            sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return DecodedRequest(
                common_name=common_names[0] if common_names else "",
                organizations=organizations,
                other_subject=other_subject,
            )
        dns_names = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
        others = tuple(
            _other_name(name)
            for name in sans
            if not isinstance(name, x509.DNSName | x509.IPAddress)
        )
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as err:
        return DecodedRequest(problem=f"malformed request: {err}")
    return DecodedRequest(
        common_name=common_names[0] if common_names else "",
        organizations=organizations,
        other_subject=other_subject,
        dns_names=dns_names,
        ip_addresses=ips,
        other_names=others,
    )
