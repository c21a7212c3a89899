"""Test certificates: the local cluster's openssl-based PKI helpers."""

from entrypoints.testkits.local_cluster.pki import CertificateAuthority, CertPair, write_signing_key

__all__ = ["CertPair", "CertificateAuthority", "write_signing_key"]
