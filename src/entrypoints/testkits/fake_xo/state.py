"""The fake XO's world: pools, hosts, VMs, and what XO shows of them.

Mutations go through methods that keep the objects consistent (a halted
VM's ``$container`` is its pool, migration moves ``$pool`` with the host)
and report every visible change to listeners as ``(kind, type, before,
after)``: the event stream turns those into ``add``/``update``/``remove``
frames.

A disconnected pool behaves as in XO: the pool, its hosts and its VMs
vanish (listeners see ``remove``), reads answer 404, and they come back with
``add`` on reconnect. Changes made meanwhile are kept but not announced.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from entrypoints.testkits.fake_xo import objects, samples
from entrypoints.testkits.fake_xo.objects import GIB

ObjectType = Literal["VM", "host", "pool"]
Listener = Callable[[str, str, "dict[str, Any] | None", "dict[str, Any] | None"], None]

#: REST collection name -> XO object type.
COLLECTIONS: Mapping[str, ObjectType] = {"vms": "VM", "hosts": "host", "pools": "pool"}


class StateError(ValueError):
    """A control request that cannot apply (unknown id, bad value)."""

    def __init__(self, message: str, *, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class FakeXOState:
    """Every object of the fake XO, keyed by type then id (insertion order kept)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"VM": {}, "host": {}, "pool": {}}
        self.disconnected: set[str] = set()
        #: pools XO (re)connected without loading their VMs: the pool and its hosts are
        #: there, its VMs and control domains are not (xen-api logs a failed
        #: ``VM.get_all_records`` and goes on; the VMs come back on their next change)
        self.unloaded: set[str] = set()
        #: per pool, the error XO overlays on its server once its event loop has gone
        #: ``xapiMarkDisconnectedDelay`` without news (the objects served are its last)
        self.server_errors: dict[str, Any] = {}
        #: what each VM's guest tools report while it runs (cleared from the object when halted)
        self.guest_addresses: dict[str, dict[str, str]] = {}
        self.listeners: list[Listener] = []

    # -- reading ------------------------------------------------------------
    def visible(self, obj: Mapping[str, Any]) -> bool:
        pool = obj.get("$pool")
        if pool in self.disconnected:
            return False
        return not (pool in self.unloaded and obj.get("type") == "VM")

    def all_visible(self, type_: str) -> Iterator[dict[str, Any]]:
        return (o for o in self.objects[type_].values() if self.visible(o))

    def get(self, type_: str, obj_id: str) -> dict[str, Any] | None:
        obj = self.objects[type_].get(obj_id)
        return obj if obj is not None and self.visible(obj) else None

    def _require(self, type_: str, obj_id: str) -> dict[str, Any]:
        obj = self.objects[type_].get(obj_id)
        if obj is None:
            raise StateError(f"no such {type_} {obj_id}")
        return obj

    # -- events ---------------------------------------------------------------
    def _emit(
        self, type_: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        seen_before = before is not None and self.visible(before)
        seen_after = after is not None and self.visible(after)
        if seen_before and seen_after:
            kind = "update"
        elif seen_after:
            kind = "add"
        elif seen_before:
            kind, after = "remove", None
        else:
            return
        for listener in list(self.listeners):
            listener(kind, type_, before if seen_before else None, after)

    def _change(
        self, type_: str, obj_id: str, mutate: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        obj = self._require(type_, obj_id)
        before = copy.deepcopy(obj)
        mutate(obj)
        self._emit(type_, before, obj)
        return obj

    # -- pools and hosts -------------------------------------------------------
    def add_pool(
        self, *, name_label: str, pool_id: str | None = None, tags: Sequence[str] = ()
    ) -> dict[str, Any]:
        pool_id = (pool_id or objects.new_id()).lower()
        if pool_id in self.objects["pool"]:
            raise StateError(f"pool {pool_id} already exists", status=409)
        pool = objects.make_pool(pool_id=pool_id, name_label=name_label, tags=_tag_list(tags))
        self.objects["pool"][pool_id] = pool
        self._emit("pool", None, pool)
        return pool

    def add_host(
        self,
        *,
        pool_id: str,
        name_label: str,
        host_id: str | None = None,
        tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        pool = self._require("pool", pool_id.lower())
        host_id = (host_id or objects.new_id()).lower()
        if host_id in self.objects["host"]:
            raise StateError(f"host {host_id} already exists", status=409)
        host = objects.make_host(
            host_id=host_id, pool_id=pool["id"], name_label=name_label, tags=_tag_list(tags)
        )
        self.objects["host"][host_id] = host
        self._emit("host", None, host)
        if not pool.get("master"):
            self._change("pool", pool["id"], lambda p: p.update(master=host_id))
        return host

    def tag_host(self, host_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        """Replace the host's tags (as XO's tag editor does): an ``update`` event."""
        return self._change("host", host_id.lower(), lambda h: h.update(tags=_tag_list(tags)))

    def tag_pool(self, pool_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        """Replace the pool's tags: an ``update`` event."""
        return self._change("pool", pool_id.lower(), lambda p: p.update(tags=_tag_list(tags)))

    def disconnect_pool(self, pool_id: str) -> None:
        """XO lost the pool: its objects vanish (``remove``) until reconnected."""
        pool_id = self._require("pool", pool_id.lower())["id"]
        if pool_id in self.disconnected:
            return
        gone = [
            (type_, obj)
            for type_ in ("VM", "host", "pool")
            for obj in self.objects[type_].values()
            if obj.get("$pool") == pool_id
        ]
        for type_, obj in gone:
            for listener in list(self.listeners):
                listener("remove", type_, obj, None)
        self.disconnected.add(pool_id)

    def reconnect_pool(self, pool_id: str, *, vms_loaded: bool = True) -> None:
        """XO has the pool again; ``vms_loaded`` False: but not its VMs (see ``unloaded``)."""
        pool_id = self._require("pool", pool_id.lower())["id"]
        if pool_id not in self.disconnected:
            return
        self.disconnected.discard(pool_id)
        if not vms_loaded:
            self.unloaded.add(pool_id)
        for type_ in ("pool", "host", "VM"):
            for obj in self.objects[type_].values():
                if obj.get("$pool") == pool_id and self.visible(obj):
                    for listener in list(self.listeners):
                        listener("add", type_, None, obj)

    def load_pool_vms(self, pool_id: str) -> None:
        """XO fetched the VMs of a pool it had without them: each is added."""
        pool_id = self._require("pool", pool_id.lower())["id"]
        if pool_id not in self.unloaded:
            return
        self.unloaded.discard(pool_id)
        for obj in self.objects["VM"].values():
            if obj.get("$pool") == pool_id and self.visible(obj):
                for listener in list(self.listeners):
                    listener("add", "VM", None, obj)

    def servers(self) -> list[dict[str, Any]]:
        """XO's servers (``/servers``): one per pool, ``disconnected`` while it is lost."""
        return [
            objects.make_server(
                pool,
                connected=pool["id"] not in self.disconnected,
                error=self.server_errors.get(pool["id"]),
            )
            for pool in self.objects["pool"].values()
        ]

    def events_failing(self, pool_id: str, error: Any) -> None:
        """XO's event loop with the pool fails and it keeps serving the pool's last
        objects (an XO that waits ``xapiMarkDisconnectedDelay`` before dropping them):
        its server overlays ``error`` (an Error serialised: maybe ``{}``); None: the
        loop works again."""
        pool_id = self._require("pool", pool_id.lower())["id"]
        if error is None:
            self.server_errors.pop(pool_id, None)
        else:
            self.server_errors[pool_id] = error

    def vm_controllers(self) -> list[dict[str, Any]]:
        """The control domains (``/vm-controllers``): one per host of a pool XO holds
        with its VMs (they are VM records, fetched with them)."""
        return [
            objects.make_vm_controller(host)
            for host in self.objects["host"].values()
            if self.visible(host) and host["$pool"] not in self.unloaded
        ]

    # -- VMs ----------------------------------------------------------------
    def _default_pool(self) -> str:
        for pool_id in self.objects["pool"]:
            return pool_id
        raise StateError("add a pool first", status=422)

    def _host_of_pool(self, pool_id: str, host_id: str | None) -> str:
        if host_id:
            host = self._require("host", host_id.lower())
            if host["$pool"] != pool_id:
                raise StateError(f"host {host_id} is not in pool {pool_id}", status=422)
            return str(host["id"])
        master = self.objects["pool"][pool_id].get("master")
        if not master:
            raise StateError(f"pool {pool_id} has no host to run a VM on", status=422)
        return str(master)

    def add_vm(
        self,
        *,
        name_label: str,
        vm_id: str | None = None,
        pool_id: str | None = None,
        host_id: str | None = None,
        power_state: str = "Running",
        cpus: int = 2,
        memory: int = 4 * GIB,
        addresses: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> dict[str, Any]:
        if host_id and not pool_id:
            pool_id = self._require("host", host_id.lower())["$pool"]
        pool_id = self._require("pool", (pool_id or self._default_pool()).lower())["id"]
        vm_id = (vm_id or objects.new_id()).lower()
        if vm_id in self.objects["VM"]:
            raise StateError(f"VM {vm_id} already exists", status=409)
        running = power_state == "Running"
        if power_state not in ("Running", "Halted"):
            raise StateError("power_state must be Running or Halted", status=422)
        self.guest_addresses[vm_id] = dict(addresses or objects.default_addresses(vm_id))
        vm = objects.make_vm(
            vm_id=vm_id,
            name_label=name_label,
            pool_id=pool_id,
            host_id=self._host_of_pool(pool_id, host_id) if running else "",
            running=running,
            cpus=cpus,
            memory=memory,
            addresses=self.guest_addresses[vm_id],
            tags=tags,
        )
        self.objects["VM"][vm_id] = vm
        self._emit("VM", None, vm)
        return vm

    def delete_vm(self, vm_id: str) -> dict[str, Any]:
        vm = self._require("VM", vm_id.lower())
        del self.objects["VM"][vm["id"]]
        self.guest_addresses.pop(vm["id"], None)
        self._emit("VM", vm, None)
        return vm

    def migrate_vm(self, vm_id: str, *, host_id: str) -> dict[str, Any]:
        """Move to ``host_id`` (and its pool); a halted VM just changes pool."""
        host = self._require("host", host_id.lower())

        def move(vm: dict[str, Any]) -> None:
            vm["$pool"] = vm["$poolId"] = host["$pool"]
            vm["$container"] = host["id"] if vm["power_state"] == "Running" else host["$pool"]

        return self._change("VM", vm_id.lower(), move)

    def start_vm(self, vm_id: str, *, host_id: str | None = None) -> dict[str, Any]:
        vm = self._require("VM", vm_id.lower())
        target = self._host_of_pool(vm["$pool"], host_id)
        addresses = self.guest_addresses.get(vm["id"]) or objects.default_addresses(vm["id"])
        return self._change(
            "VM",
            vm["id"],
            lambda v: objects.power_on(v, host_id=target, addresses=addresses),
        )

    def stop_vm(self, vm_id: str) -> dict[str, Any]:
        return self._change("VM", vm_id.lower(), objects.power_off)

    def rename_vm(self, vm_id: str, *, name_label: str) -> dict[str, Any]:
        return self._change("VM", vm_id.lower(), lambda v: v.update(name_label=name_label))

    def resize_vm(
        self, vm_id: str, *, cpus: int | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        return self._change(
            "VM", vm_id.lower(), lambda v: objects.resize(v, cpus=cpus, memory=memory)
        )

    def tag_vm(self, vm_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        return self._change("VM", vm_id.lower(), lambda v: v.update(tags=_tag_list(tags)))

    def set_addresses(self, vm_id: str, *, addresses: Mapping[str, str]) -> dict[str, Any]:
        """What the guest tools report (applied at once when the VM runs)."""
        vm = self._require("VM", vm_id.lower())
        self.guest_addresses[vm["id"]] = dict(addresses)

        def apply(v: dict[str, Any]) -> None:
            if v["power_state"] == "Running":
                objects.power_on(v, host_id=v["$container"], addresses=addresses)

        return self._change("VM", vm["id"], apply)

    def patch_vm(self, vm_id: str, *, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Overwrite raw top-level fields (anything XO could change, e.g. ``name_description``)."""
        return self._change("VM", vm_id.lower(), lambda v: v.update(copy.deepcopy(dict(fields))))

    # -- bulk and samples --------------------------------------------------
    def populate(
        self, *, count: int, pool_id: str | None = None, prefix: str = "vm", running: bool = True
    ) -> list[dict[str, Any]]:
        """Add ``count`` VMs named ``<prefix>-<n>`` spread over the pool's hosts."""
        pool_id = (pool_id or self._default_pool()).lower()
        hosts = [h["id"] for h in self.objects["host"].values() if h["$pool"] == pool_id]
        start = len(self.objects["VM"])
        return [
            self.add_vm(
                name_label=f"{prefix}-{start + n}",
                pool_id=pool_id,
                host_id=hosts[n % len(hosts)] if hosts else None,
                power_state="Running" if running else "Halted",
            )
            for n in range(count)
        ]

    @classmethod
    def from_samples(cls) -> FakeXOState:
        """The sample world: one pool, its master host, the sample VM running on it."""
        state = cls()
        vm, host = samples.VM_RUNNING, samples.HOST
        state.add_pool(name_label=samples.POOL["name_label"], pool_id=vm["$pool"])
        state.add_host(pool_id=vm["$pool"], name_label=host["name_label"], host_id=host["id"])
        state.add_vm(
            name_label=vm["name_label"],
            vm_id=vm["id"],
            host_id=host["id"],
            cpus=vm["CPUs"]["max"],
            memory=vm["memory"]["size"],
            addresses=vm["addresses"],
        )
        return state

    # -- persistence ----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "pools": list(self.objects["pool"].values()),
            "hosts": list(self.objects["host"].values()),
            "vms": list(self.objects["VM"].values()),
            "disconnected": sorted(self.disconnected),
            "unloaded": sorted(self.unloaded),
            "guest_addresses": self.guest_addresses,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FakeXOState:
        state = cls()
        for key, type_ in (("pools", "pool"), ("hosts", "host"), ("vms", "VM")):
            for obj in data.get(key, []):
                if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
                    raise StateError(f"state file: a {type_} without an id", status=422)
                state.objects[type_][obj["id"]] = obj
        state.disconnected = set(data.get("disconnected", []))
        state.unloaded = set(data.get("unloaded", []))
        state.guest_addresses = {k: dict(v) for k, v in data.get("guest_addresses", {}).items()}
        return state

    def save(self, path: str | Path) -> None:
        target = Path(path)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> FakeXOState:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def _tag_list(tags: Sequence[str]) -> list[str]:
    """XO's tags: strings (a control request with anything else is refused, 422)."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise StateError("tags must be a list of strings", status=422)
    return list(tags)
