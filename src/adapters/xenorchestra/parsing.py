"""XO JSON objects turned into domain values, defensively.

Whatever a server (or a proxy in front of it) sends, the result is either a
valid domain value or a ProtocolError that names the endpoint and what was
wrong; never a KeyError or TypeError escaping into the controllers.

The field lists are the only XO fields the CCM reads: bulk reads ask for
exactly these (a full VM is ~3 KB, a picked one ~300 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from domain.errors import ProtocolError
from domain.model import VM, Host, Pool, PowerState, XOServer

#: ``fields=`` of a VM list and of the VM event subscription. Top-level keys only:
#: XO picks a dotted path (``CPUs.max``) as a partial nested object, which its
#: own spec's ``Unbrand_XoVm_`` refuses (``CPUs`` requires ``number`` and ``max``,
#: ``memory`` requires ``static``, ``dynamic`` and ``size``); whole ``CPUs`` and
#: ``memory`` cost a few bytes and are what the spec describes.
VM_FIELDS: Final = (
    "id",
    "name_label",
    "power_state",
    "$pool",
    "$container",
    "CPUs",
    "memory",
    "mainIpAddress",
    "addresses",
    "tags",
)
#: ``tags`` of hosts and pools: a tag may name the zone or region (``zoneSource: hostTag``).
HOST_FIELDS: Final = ("id", "name_label", "$pool", "tags")
POOL_FIELDS: Final = ("id", "name_label", "tags")


def _object(data: Any, endpoint: str, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: expected a {what} object, got {type(data).__name__}"
        )
    return data


def _str(obj: Mapping[str, Any], key: str, endpoint: str, what: str, *, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            ident = obj.get("id")
            suffix = f" {ident}" if isinstance(ident, str) else ""
            raise ProtocolError(f"Xen Orchestra {endpoint}: {what}{suffix} has no {key!r}")
        return ""
    if not isinstance(value, str):
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: {what} {key!r} is a {type(value).__name__}, not a string"
        )
    return value


def _id(obj: Mapping[str, Any], endpoint: str, what: str) -> str:
    ident = _str(obj, "id", endpoint, what, required=True)
    if not ident:
        raise ProtocolError(f"Xen Orchestra {endpoint}: {what} has an empty 'id'")
    return ident.lower()


def _int(obj: Mapping[str, Any], outer: str, inner: str, endpoint: str, vm_id: str) -> int:
    nested = obj.get(outer)
    if nested is None:
        return 0
    if not isinstance(nested, Mapping):
        raise ProtocolError(f"Xen Orchestra {endpoint}: VM {vm_id} {outer!r} is not an object")
    value = nested.get(inner)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: VM {vm_id} '{outer}.{inner}' is not a number"
        )
    if not math.isfinite(value) or value < 0:
        # 1e400 reads as inf, which int() refuses with OverflowError
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: VM {vm_id} '{outer}.{inner}' is not a finite count"
        )
    return int(value)


def _tags(obj: Mapping[str, Any], endpoint: str, what: str) -> tuple[str, ...]:
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ProtocolError(f"Xen Orchestra {endpoint}: {what} 'tags' is not a string list")
    return tuple(tags)


def parse_vm(data: Any, *, endpoint: str) -> VM:
    """A VM from XO's object (full, or picked with :data:`VM_FIELDS`)."""
    obj = _object(data, endpoint, "VM")
    vm_id = _id(obj, endpoint, "VM")
    raw_state = _str(obj, "power_state", endpoint, "VM", required=True)
    try:
        state = PowerState(raw_state)
    except ValueError:
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: VM {vm_id} has an unknown power_state {raw_state!r}"
        ) from None
    addresses = obj.get("addresses") or {}
    if not isinstance(addresses, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in addresses.items()
    ):
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: VM {vm_id} 'addresses' is not a map of strings"
        )
    tags = _tags(obj, endpoint, f"VM {vm_id}")
    main_ip = _str(obj, "mainIpAddress", endpoint, "VM", required=False) or None
    return VM(
        id=vm_id,
        name_label=_str(obj, "name_label", endpoint, "VM", required=False),
        power_state=state,
        pool_id=_str(obj, "$pool", endpoint, "VM", required=True).lower(),
        container=_str(obj, "$container", endpoint, "VM", required=False).lower(),
        cpus=_int(obj, "CPUs", "max", endpoint, vm_id),
        memory_bytes=_int(obj, "memory", "size", endpoint, vm_id),
        main_ip_address=main_ip,
        addresses=MappingProxyType(dict(addresses)),
        tags=tags,
    )


def parse_host(data: Any, *, endpoint: str) -> Host:
    obj = _object(data, endpoint, "host")
    host_id = _id(obj, endpoint, "host")
    return Host(
        id=host_id,
        name_label=_str(obj, "name_label", endpoint, "host", required=False),
        pool_id=_str(obj, "$pool", endpoint, "host", required=False).lower(),
        tags=_tags(obj, endpoint, f"host {host_id}"),
    )


def parse_pool(data: Any, *, endpoint: str) -> Pool:
    obj = _object(data, endpoint, "pool")
    pool_id = _id(obj, endpoint, "pool")
    return Pool(
        id=pool_id,
        name_label=_str(obj, "name_label", endpoint, "pool", required=False),
        tags=_tags(obj, endpoint, f"pool {pool_id}"),
    )


def parse_server(data: Any, *, endpoint: str) -> XOServer:
    """One of XO's connections to a pool. ``poolId`` is there only while connected;
    ``error`` is whatever XO stored or overlaid (a raw Error serialised: its message
    may be missing, its code or nothing said): any value but null is an error."""
    obj = _object(data, endpoint, "server")
    status = obj.get("status")
    if not isinstance(status, str) or not status:
        raise ProtocolError(f"Xen Orchestra {endpoint}: a server without a status")
    label = obj.get("label") or obj.get("host") or obj.get("id") or ""
    return XOServer(
        label=str(label),
        enabled=obj.get("enabled") is not False,
        status=status,
        pool_id=_str(obj, "poolId", endpoint, "server", required=False).lower(),
        error=_error_text(obj.get("error")),
    )


def _error_text(error: Any) -> str:
    if error is None:
        return ""
    if isinstance(error, dict):
        for key in ("message", "code"):
            said = error.get(key)
            if isinstance(said, str) and said:
                return said[:200]
        return "an error, no message"
    return str(error)[:200] or "an error, no message"


def expect_id(answered: str, asked: str, *, endpoint: str, what: str) -> None:
    """An answer for one object must be about that object.

    A cache or proxy that answers ``GET /pools/A`` with pool B would make pool A
    look known, and a VM's 404 in it would read as a deletion; a VM answered
    for another would lend a node that VM's identity. ``answered`` is parsed
    (lower-cased), ``asked`` as the caller gave it.
    """
    if answered != asked.strip().lower():
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: asked for {what} {asked.strip().lower()}, "
            f"answered with {what} {answered}"
        )


def parse_list(data: Any, *, endpoint: str) -> Sequence[Any]:
    """A collection answer must be a JSON array (of objects, when ``fields`` is set)."""
    if not isinstance(data, list):
        raise ProtocolError(
            f"Xen Orchestra {endpoint}: expected a JSON array, got {type(data).__name__}"
        )
    return data


def exact_filter(field: str, value: str) -> str:
    """An XO complex-matcher filter matching ``field`` equal to ``value`` exactly.

    A regex, because a plain ``field:value`` is a case-insensitive
    substring match and raw strings cannot hold spaces or colons. Escaped for
    JavaScript regexes, including the ``/`` that would end the literal.
    """
    special = set("\\^$.*+?()[]{}|/-")
    escaped = "".join("\\" + c if c in special else c for c in value)
    return f"{field}:/^{escaped}$/"
