"""The Inventory port over the real Xen Orchestra REST API (``/rest/v0``).

Modules, one concern each:

- ``inventory``: :class:`XOInventory`, the port (lookups, snapshot, caches);
- ``changes``: the change stream (server-sent events, polling fallback);
- ``http``: the pooled client, retries, deadline and error typing;
- ``failures``: error answers, ``Retry-After``, the HTTP library's failures mapped;
- ``parsing``: XO JSON to domain values, field lists, the name filter;
- ``auth``, ``tls``: credentials and certificate verification;
- ``observer``: the metrics hook; ``policy``: timing knobs.
"""

from adapters.xenorchestra.auth import Credentials
from adapters.xenorchestra.http import XOHttpClient
from adapters.xenorchestra.inventory import XOInventory
from adapters.xenorchestra.observer import NullObserver, XORequestObserver
from adapters.xenorchestra.policy import RetryPolicy, StreamPolicy

__all__ = [
    "Credentials",
    "NullObserver",
    "RetryPolicy",
    "StreamPolicy",
    "XOHttpClient",
    "XOInventory",
    "XORequestObserver",
]
