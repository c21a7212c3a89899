"""Certificate work that needs the ``cryptography`` package, run in a child process.

The CCM serves HTTPS with a certificate it generates when none is given (the
default), like every Kubernetes component. Importing ``cryptography`` costs the
process about 9 MiB of resident memory for its whole life, to be used once at
start: so the CCM runs this module as a short-lived child
(``python -m adapters.observability.certificates``, see
:func:`adapters.observability.secure_serving.self_signed_pair`) and never imports
it itself, except to read the names of a ``--tls-sni-cert-key`` certificate given
without names.

The generated certificate is client-go's ``GenerateSelfSignedCertKey``: a one-year
CA ``localhost-ca@<unix time>`` signs a serving certificate ``localhost@<unix time>``
for ``localhost`` and ``127.0.0.1`` (plus the bind address when it is not a wildcard),
RSA 2048; the served chain is the certificate then the CA.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import sys
import time
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """A certificate valid from ``start`` to ``end``; a CA may sign certificates."""
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
    )


def generate_self_signed(
    host: str = "localhost",
    alternate_ips: Sequence[str] = ("127.0.0.1",),
    alternate_dns: Sequence[str] = (),
    *,
    now: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM) as client-go generates them."""
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    end = start + datetime.timedelta(days=365, hours=1)
    stamp = int(time.time())
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name(f"{host}-ca@{stamp}")
    ca = _builder(ca_name, ca_name, ca_key.public_key(), start, end, ca=True).sign(
        ca_key, hashes.SHA256()
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    ips = list(alternate_ips)
    dns = list(alternate_dns)
    try:
        ips.insert(0, str(ipaddress.ip_address(host)))
    except ValueError:
        dns.insert(0, host)
    names += [x509.DNSName(d) for d in dict.fromkeys(dns)]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    cert = (
        _builder(_name(f"{host}@{stamp}"), ca_name, key.public_key(), start, end, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return chain, key_pem


def certificate_names(chain: bytes) -> tuple[str, ...]:
    """The names a certificate serves (SAN DNS names and IPs, else its CN)."""
    cert = x509.load_pem_x509_certificate(chain)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(names)


def main(argv: Sequence[str] | None = None) -> int:
    """``HOST [--ip IP]... [--dns NAME]...``: a self-signed pair as JSON on stdout
    (``{"chain": PEM, "key": PEM}``), through a pipe, never a file."""
    parser = argparse.ArgumentParser(prog="python -m adapters.observability.certificates")
    parser.add_argument("host")
    parser.add_argument("--ip", action="append", default=[])
    parser.add_argument("--dns", action="append", default=[])
    args = parser.parse_args(argv)
    chain, key = generate_self_signed(args.host, args.ip, args.dns)
    json.dump({"chain": chain.decode("ascii"), "key": key.decode("ascii")}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
