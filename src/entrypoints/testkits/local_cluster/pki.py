"""Throwaway PKI for a test control plane, made with the ``openssl`` CLI.

The ``cryptography`` package is not among the project's dependencies, and
``openssl`` ships with every Debian base, so the CLI it is. ECDSA P-256 keys
everywhere: generating one takes a few milliseconds where RSA takes tens,
and kube-apiserver accepts them for serving, client and service-account
signing alike.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "2"


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate (or public key) and its private key, as PEM files."""

    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise FileNotFoundError("the openssl CLI is needed to make test certificates")
    subprocess.run([exe, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _new_key(path: Path) -> Path:
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        str(path),
        cwd=path.parent,
    )
    path.chmod(0o600)
    return path


class CertificateAuthority:
    """A self-signed CA that issues serving and client certificates."""

    def __init__(self, directory: Path, common_name: str = "xoccm-test-ca") -> None:
        self.directory = directory
        self.key = _new_key(directory / "ca.key")
        self.cert = directory / "ca.crt"
        _openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            str(self.key),
            "-subj",
            f"/CN={common_name}",
            "-days",
            _DAYS,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out",
            str(self.cert),
            cwd=directory,
        )

    @classmethod
    def existing(cls, directory: Path) -> CertificateAuthority:
        """The CA made earlier in ``directory`` (``ca.key``, ``ca.crt``): to issue more
        certificates it signs, e.g. a kubelet's ``system:node:<name>`` client one."""
        ca = cls.__new__(cls)
        ca.directory, ca.key, ca.cert = directory, directory / "ca.key", directory / "ca.crt"
        return ca

    def issue(
        self,
        stem: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        hosts: tuple[str, ...] = (),
        server: bool = False,
    ) -> CertPair:
        """Issue a leaf certificate; ``hosts`` become DNS or IP subject alternative names."""
        key = _new_key(self.directory / f"{stem}.key")
        cert = self.directory / f"{stem}.crt"
        subject = f"/CN={common_name}" + "".join(f"/O={o}" for o in organizations)
        ext = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}",
        ]
        if hosts:
            ext.append("subjectAltName=" + ",".join(_san(h) for h in hosts))
        args = ["req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", _DAYS]
        args += ["-CA", str(self.cert), "-CAkey", str(self.key), "-out", str(cert)]
        for line in ext:
            args += ["-addext", line]
        _openssl(*args, cwd=self.directory)
        return CertPair(cert=cert, key=key)


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


def write_signing_key(directory: Path, stem: str) -> CertPair:
    """A service-account signing key pair: ``cert`` holds the public key (PEM)."""
    key = _new_key(directory / f"{stem}.key")
    public = directory / f"{stem}.pub"
    _openssl("pkey", "-in", str(key), "-pubout", "-out", str(public), cwd=directory)
    return CertPair(cert=public, key=key)
