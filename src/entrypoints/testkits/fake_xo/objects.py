"""Building XO objects from the samples, and picking fields out of them.

Every object the fake serves starts as a deep copy of a real sample (so it
has XO's ~100 fields), with ids rewritten to keep the world consistent:
``vm.$pool == host.$pool == pool.id``, ``pool.master`` a host of the pool,
``$poolId`` always equal to ``$pool``.
"""

from __future__ import annotations

import copy
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from entrypoints.testkits.fake_xo import samples

GIB = 1024**3

#: Keys XO only reports for a running VM with guest tools (dropped when halted).
RUNNING_ONLY_KEYS = frozenset(samples.VM_RUNNING) - frozenset(samples.VM_HALTED)


def new_id() -> str:
    return str(uuid.uuid4())


def _xapi_ref() -> str:
    return f"OpaqueRef:{uuid.uuid4()}"


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def default_addresses(vm_id: str) -> dict[str, str]:
    """Stable guest addresses for a VM (what its guest tools would report)."""
    d = _digest(vm_id)
    return {
        "0/ipv4/0": f"10.{d[0]}.{d[1]}.{d[2] % 253 + 1}",
        "0/ipv6/0": f"fe80::{d[3]:02x}{d[4]:02x}:{d[5]:02x}ff:fe{d[6]:02x}:{d[7]:02x}{d[8]:02x}",
    }


def main_ip(addresses: Mapping[str, str]) -> str | None:
    """XO's ``mainIpAddress``: the first IPv4, else the first IPv6."""
    for family in ("ipv4", "ipv6"):
        for key in sorted(addresses):
            if f"/{family}/" in key:
                return addresses[key]
    return None


def make_pool(
    *, pool_id: str, name_label: str, master: str = "", tags: Sequence[str] = ()
) -> dict[str, Any]:
    pool = copy.deepcopy(samples.POOL)
    pool.update(
        id=pool_id,
        uuid=pool_id,
        name_label=name_label,
        master=master,
        _xapiRef=_xapi_ref(),
        tags=list(tags),
    )
    pool["$pool"] = pool["$poolId"] = pool_id
    return pool


def make_host(
    *, host_id: str, pool_id: str, name_label: str, tags: Sequence[str] = ()
) -> dict[str, Any]:
    host = copy.deepcopy(samples.HOST)
    d = _digest(host_id)
    host.update(
        id=host_id,
        uuid=host_id,
        name_label=name_label,
        address=f"172.16.{d[0]}.{d[1] % 253 + 1}",
        hostname=name_label.lower().replace(" ", "-") or "localhost",
        _xapiRef=_xapi_ref(),
        residentVms=[host["controlDomain"]],
        tags=list(tags),
    )
    host["$pool"] = host["$poolId"] = pool_id
    return host


def make_server(pool: Mapping[str, Any], *, connected: bool, error: Any = None) -> dict[str, Any]:
    """XO's record of the connection to ``pool``'s master (``/servers``): ``poolId``
    only while connected (XO reads it from the live connection), ``error`` when set."""
    server_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"xo-server:{pool['id']}"))
    server: dict[str, Any] = {
        "id": server_id,
        "label": pool["name_label"],
        "host": f"{pool['name_label'].lower().replace(' ', '-') or 'pool'}.example.test",
        "username": "root",
        "enabled": True,
        "readOnly": False,
        "allowUnauthorized": False,
        "status": "connected" if connected else "disconnected",
    }
    if connected:
        server["poolId"] = pool["id"]
    if error is not None:
        server["error"] = error
    return server


def make_vm_controller(host: Mapping[str, Any]) -> dict[str, Any]:
    """The control domain (dom0) of ``host``: a VM record of type ``VM-controller``."""
    dom0 = str(uuid.uuid5(uuid.NAMESPACE_URL, f"xo-dom0:{host['id']}"))
    return {
        "id": dom0,
        "uuid": dom0,
        "type": "VM-controller",
        "name_label": f"Control domain on host: {host['name_label']}",
        "power_state": "Running",
        "$container": host["id"],
        "$pool": host["$pool"],
        "$poolId": host["$pool"],
    }


def make_vm(
    *,
    vm_id: str,
    name_label: str,
    pool_id: str,
    host_id: str,
    running: bool,
    cpus: int = 2,
    memory: int = 4 * GIB,
    addresses: Mapping[str, str] | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """A VM object; ``host_id`` is where it runs (ignored when halted)."""
    vm = copy.deepcopy(samples.VM_HALTED)
    vm.update(id=vm_id, uuid=vm_id, name_label=name_label, _xapiRef=_xapi_ref(), tags=list(tags))
    vm["$pool"] = vm["$poolId"] = pool_id
    resize(vm, cpus=cpus, memory=memory)
    if running:
        power_on(vm, host_id=host_id, addresses=addresses or default_addresses(vm_id))
    else:
        power_off(vm)
    return vm


def resize(vm: dict[str, Any], *, cpus: int | None = None, memory: int | None = None) -> None:
    if cpus is not None:
        vm["CPUs"] = {"max": cpus, "number": cpus}
    if memory is not None:
        vm["memory"] = {
            "dynamic": [memory, memory],
            "static": [min(memory, 2 * GIB), memory],
            "size": memory,
        }


def power_on(vm: dict[str, Any], *, host_id: str, addresses: Mapping[str, str]) -> None:
    """Running: ``$container`` is the host; guest tools report addresses."""
    for key in RUNNING_ONLY_KEYS:
        vm[key] = copy.deepcopy(samples.VM_RUNNING[key])
    vm["os_version"] = copy.deepcopy(samples.VM_RUNNING["os_version"])
    vm["power_state"] = "Running"
    vm["$container"] = host_id
    vm["startTime"] = int(time.time())
    vm["addresses"] = dict(addresses)
    ip = main_ip(addresses)
    if ip is None:
        vm.pop("mainIpAddress", None)
    else:
        vm["mainIpAddress"] = ip


def power_off(vm: dict[str, Any], *, state: str = "Halted") -> None:
    """Halted: ``$container`` is the pool, no addresses, no guest-tools keys."""
    for key in RUNNING_ONLY_KEYS:
        vm.pop(key, None)
    vm["power_state"] = state
    vm["$container"] = vm["$pool"]
    vm["startTime"] = None
    vm["os_version"] = None
    vm["addresses"] = {}


def pick(obj: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """XO's field selection (lodash ``pick``): only these keys; ``a.b`` is a nested
    pick unless ``a.b`` is itself a key; unknown fields are dropped."""
    out: dict[str, Any] = {}
    for field in fields:
        if field in obj:
            out[field] = copy.deepcopy(obj[field])
            continue
        parts = field.split(".")
        value: Any = obj
        for part in parts:
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            target = out
            for part in parts[:-1]:
                nested = target.setdefault(part, {})
                if not isinstance(nested, dict):
                    break
                target = nested
            else:
                target[parts[-1]] = copy.deepcopy(value)
    return out
