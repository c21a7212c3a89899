"""The providerID: ``xenorchestra://<pool uuid>/<vm uuid>``.

Parsing is strict for IDs that claim our scheme and lenient for the rest:
a foreign or empty providerID is simply "not ours", never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from domain.errors import ProviderIDError

SCHEME = "xenorchestra"
PREFIX = f"{SCHEME}://"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(value: str) -> bool:
    """True when ``value`` has the 8-4-4-4-12 hex shape XO uses for ids."""
    return bool(_UUID.match(value))


def is_ours(provider_id: str) -> bool:
    """True when the providerID uses our scheme (whatever follows)."""
    return provider_id.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class ProviderID:
    """A parsed providerID. ``pool_id`` is empty for ``xenorchestra:///<vm>``."""

    pool_id: str
    vm_id: str

    @classmethod
    def parse(cls, value: str) -> ProviderID:
        """Parse ``xenorchestra://<pool>/<vm>``; uuids are lower-cased.

        Raises ProviderIDError naming the problem for anything malformed,
        including foreign schemes: callers check :func:`is_ours` first.
        """
        parsed = _parsed(value)
        if isinstance(parsed, str):
            raise ProviderIDError(parsed)
        return parsed

    def format(self) -> str:
        """The canonical string form, as written to ``spec.providerID``."""
        return f"{PREFIX}{self.pool_id}/{self.vm_id}"

    def __str__(self) -> str:
        return self.format()


@lru_cache(maxsize=4096)  # every event of every node asks: check each providerID once
def _parsed(value: str) -> ProviderID | str:
    """:meth:`ProviderID.parse`'s answer: the parsed value, or why it is malformed."""
    if not is_ours(value):
        return f"providerID {value!r} does not start with {PREFIX!r}"
    parts = value[len(PREFIX) :].split("/")
    if len(parts) != 2:
        return f"providerID {value!r} must be {PREFIX}<pool uuid>/<vm uuid>"
    pool_id, vm_id = parts
    if not vm_id:
        return f"providerID {value!r} has no VM uuid"
    if not is_uuid(vm_id):
        return f"providerID {value!r}: VM id {vm_id!r} is not a uuid"
    if pool_id and not is_uuid(pool_id):
        return f"providerID {value!r}: pool id {pool_id!r} is not a uuid"
    return ProviderID(pool_id=pool_id.lower(), vm_id=vm_id.lower())
