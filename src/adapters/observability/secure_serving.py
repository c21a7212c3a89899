"""HTTPS for the health and metrics port, as a Kubernetes component serves it.

What ``k8s.io/apiserver``'s secure serving options do, and this module does the same:

- ``--tls-cert-file``/``--tls-private-key-file`` given: serve that pair;
- else ``--cert-dir`` given: serve ``<cert-dir>/cloud-controller-manager.crt`` and
  ``.key``, generating and writing them first when they cannot be read;
- else a self-signed certificate generated in memory at start.

The generated certificate is client-go's ``GenerateSelfSignedCertKey``: a one-year
CA ``localhost-ca@<unix time>`` signs a serving certificate ``localhost@<unix time>``
for ``localhost`` and ``127.0.0.1`` (plus the bind address when it is not a wildcard),
RSA 2048; the served chain is the certificate then the CA.

``--tls-sni-cert-key`` adds certificates chosen by the SNI name (the names given,
else the certificate's own names); ``--tls-min-version`` and ``--tls-cipher-suites``
(Go names, mapped to OpenSSL's) shape the handshake; a client CA bundle makes the
server ask for (never require) a client certificate, which the delegated
authenticator then turns into a user.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from loguru import logger

#: ``SecureServing.ServerCert.PairName`` of k8s.io/cloud-provider's options.
PAIR_NAME = "cloud-controller-manager"
_TLS_VERSIONS = {
    "VersionTLS10": ssl.TLSVersion.TLSv1,
    "VersionTLS11": ssl.TLSVersion.TLSv1_1,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}


class ServingError(ValueError):
    """The serving certificate or TLS settings are unusable; one line."""


@dataclass(frozen=True)
class SNICertificate:
    cert_file: str
    key_file: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServingOptions:
    """The secure-serving flags, as this module needs them."""

    bind_address: str = "0.0.0.0"
    cert_file: str | None = None
    key_file: str | None = None
    cert_dir: str | None = None
    sni: tuple[SNICertificate, ...] = ()
    #: "" (Go's default, TLS 1.2 here) or VersionTLS10..13.
    min_version: str = ""
    #: OpenSSL names of the TLS 1.2 suites to allow (empty: OpenSSL's defaults).
    ciphers: tuple[str, ...] = ()
    #: PEM bundle of the CAs whose client certificates are accepted.
    client_ca_pem: bytes | None = None


def _unspecified(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return address in ("", "*")


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


@contextlib.contextmanager
def _in_memory_files(*contents: bytes) -> Iterator[list[str]]:
    """Paths OpenSSL can read that never touch a disk (memfd), else private temp files
    removed at once: ``ssl`` only loads certificates and keys from paths."""
    paths: list[str] = []
    fds: list[int] = []
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    try:
        for i, data in enumerate(contents):
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create(f"xoccm-serving-{i}", 0)
                os.write(fd, data)
                fds.append(fd)
                paths.append(f"/proc/self/fd/{fd}")
            else:  # pragma: no cover - non-Linux
                tmpdir = tmpdir or tempfile.TemporaryDirectory(prefix="xoccm-tls-")
                path = Path(tmpdir.name) / f"{i}.pem"
                path.write_bytes(data)
                path.chmod(0o600)
                paths.append(str(path))
        yield paths
    finally:
        for fd in fds:
            os.close(fd)
        if tmpdir is not None:
            tmpdir.cleanup()


def _readable_pair(cert: Path, key: Path) -> bool:
    """certutil.CanReadCertAndKey: both readable, or neither exists."""
    cert_ok, key_ok = os.access(cert, os.R_OK), os.access(key, os.R_OK)
    if cert_ok != key_ok:
        missing = key if cert_ok else cert
        raise ServingError(f"--cert-dir: {missing} cannot be read (its pair can)")
    return cert_ok


def serving_pair(options: ServingOptions) -> tuple[bytes, bytes, str]:
    """The serving certificate chain and key (PEM), and where they come from."""
    if options.cert_file and options.key_file:
        try:
            return (
                Path(options.cert_file).read_bytes(),
                Path(options.key_file).read_bytes(),
                f"{options.cert_file}, {options.key_file}",
            )
        except OSError as err:
            raise ServingError(f"cannot read the serving certificate: {err}") from None
    alternate_ips = ["127.0.0.1"]
    alternate_dns: list[str] = []
    if _unspecified(options.bind_address):
        alternate_dns.append("localhost")
    else:
        alternate_ips.append(options.bind_address)
    if options.cert_dir:
        directory = Path(options.cert_dir)
        cert, key = directory / f"{PAIR_NAME}.crt", directory / f"{PAIR_NAME}.key"
        if _readable_pair(cert, key):
            return cert.read_bytes(), key.read_bytes(), f"{cert}, {key}"
        chain, key_pem = generate_self_signed("localhost", alternate_ips, alternate_dns)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            cert.write_bytes(chain)
            key.touch(mode=0o600)
            key.write_bytes(key_pem)
            key.chmod(0o600)
        except OSError as err:
            raise ServingError(f"--cert-dir: cannot write {directory}: {err}") from None
        logger.info("generated a self-signed certificate ({}, {})", cert, key)
        return chain, key_pem, f"{cert}, {key}"
    chain, key_pem = generate_self_signed("localhost", alternate_ips, alternate_dns)
    logger.info("generated a self-signed certificate in memory")
    return chain, key_pem, "self-signed, in memory"


def _context(options: ServingOptions, chain: bytes, key: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS.get(options.min_version, ssl.TLSVersion.TLSv1_2)
    if options.ciphers:
        try:
            context.set_ciphers(":".join(options.ciphers))
        except ssl.SSLError as err:
            raise ServingError(f"--tls-cipher-suites: OpenSSL refuses them: {err}") from None
    with _in_memory_files(chain, key) as (cert_path, key_path):
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError) as err:
            raise ServingError(f"the serving certificate and key do not load: {err}") from None
    if options.client_ca_pem:
        try:
            context.load_verify_locations(cadata=options.client_ca_pem.decode("ascii"))
        except (ssl.SSLError, ValueError) as err:
            raise ServingError(f"the client CA bundle does not load: {err}") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


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


def _match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower(), name.lower()
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return pattern == name


def build_ssl_context(options: ServingOptions) -> tuple[ssl.SSLContext, str]:
    """The server's TLS context and a description of its certificate."""
    chain, key, origin = serving_pair(options)
    context = _context(options, chain, key)
    named: list[tuple[str, ssl.SSLContext]] = []
    for sni in options.sni:
        try:
            sni_chain, sni_key = Path(sni.cert_file).read_bytes(), Path(sni.key_file).read_bytes()
        except OSError as err:
            raise ServingError(f"--tls-sni-cert-key: {err}") from None
        sni_context = _context(options, sni_chain, sni_key)
        for name in sni.names or certificate_names(sni_chain):
            named.append((name, sni_context))
    if named:
        # Explicit names beat wildcards, as Go's SNI selection does.
        ordered = [n for n in named if not n[0].startswith("*")] + [
            n for n in named if n[0].startswith("*")
        ]

        def choose(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            if server_name:
                for pattern, candidate in ordered:
                    if _match(pattern, server_name):
                        sock.context = candidate
                        return

        context.sni_callback = choose
    return context, origin
