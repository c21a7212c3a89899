"""TLS settings for the XO connection.

Verification is on unless the config says ``insecure: true``; ``caFile``
adds a private CA (XO appliances often use one) on top of nothing else, so a
certificate signed by a public CA is not silently accepted for a private
deployment.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from domain.errors import InventoryError


def tls_verify(*, insecure: bool, ca_file: Path | None) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` gets: an SSLContext, or False when insecure."""
    if insecure:
        return False
    if ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as err:
        raise InventoryError(f"caFile {ca_file}: cannot load a PEM CA bundle: {err}") from None
