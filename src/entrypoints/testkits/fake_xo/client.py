"""A small async client for the fake XO's ``/_control`` API.

For anything driving a fake XO in another process (the demo, benchmarks,
contract tests that go through HTTP like a real operator would).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from entrypoints.testkits.fake_xo.control import PREFIX


class FakeXOControlError(RuntimeError):
    """The control API refused a request; the message is its error."""


class FakeXOControlClient:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(base_url=url.rstrip("/") + PREFIX, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> FakeXOControlClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = await self._client.request(
            method, path, json=dict(body) if body is not None else None
        )
        data = response.json() if response.content else None
        if response.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else response.text
            raise FakeXOControlError(f"{method} {PREFIX}{path}: {response.status_code} {message}")
        return data

    async def _object(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        data = await self.call(method, path, body)
        if not isinstance(data, dict):
            raise FakeXOControlError(f"{method} {PREFIX}{path}: expected a JSON object")
        return data

    # -- the world ----------------------------------------------------------
    async def add_pool(
        self, *, name_label: str, pool_id: str | None = None, tags: Sequence[str] | None = None
    ) -> dict[str, Any]:
        body = _drop_none(
            name_label=name_label, id=pool_id, tags=list(tags) if tags is not None else None
        )
        return await self._object("POST", "/pools", body)

    async def add_host(
        self,
        *,
        pool_id: str,
        name_label: str,
        host_id: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        body = _drop_none(
            pool_id=pool_id,
            name_label=name_label,
            id=host_id,
            tags=list(tags) if tags is not None else None,
        )
        return await self._object("POST", "/hosts", body)

    async def tag_host(self, host_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        """Replace the host's tags (an ``update`` event for subscribers)."""
        return await self._object("POST", f"/hosts/{host_id}/tags", {"tags": list(tags)})

    async def tag_pool(self, pool_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        """Replace the pool's tags (an ``update`` event for subscribers)."""
        return await self._object("POST", f"/pools/{pool_id}/tags", {"tags": list(tags)})

    async def add_vm(
        self,
        *,
        name_label: str,
        vm_id: str | None = None,
        pool_id: str | None = None,
        host_id: str | None = None,
        power_state: str | None = None,
        cpus: int | None = None,
        memory: int | None = None,
        addresses: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        body = _drop_none(
            name_label=name_label,
            id=vm_id,
            pool_id=pool_id,
            host_id=host_id,
            power_state=power_state,
            cpus=cpus,
            memory=memory,
            addresses=dict(addresses) if addresses is not None else None,
            tags=list(tags) if tags is not None else None,
        )
        return await self._object("POST", "/vms", body)

    async def populate(self, *, count: int, pool_id: str | None = None) -> list[str]:
        body = _drop_none(count=count, pool_id=pool_id)
        return list((await self.call("POST", "/vms/populate", body))["ids"])

    async def delete_vm(self, vm_id: str) -> dict[str, Any]:
        return await self._object("DELETE", f"/vms/{vm_id}")

    async def migrate_vm(self, vm_id: str, *, host_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/vms/{vm_id}/migrate", {"host_id": host_id})

    async def start_vm(self, vm_id: str, *, host_id: str | None = None) -> dict[str, Any]:
        return await self._object("POST", f"/vms/{vm_id}/start", _drop_none(host_id=host_id))

    async def stop_vm(self, vm_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/vms/{vm_id}/stop")

    async def rename_vm(self, vm_id: str, *, name_label: str) -> dict[str, Any]:
        return await self._object("POST", f"/vms/{vm_id}/rename", {"name_label": name_label})

    async def resize_vm(
        self, vm_id: str, *, cpus: int | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        body = _drop_none(cpus=cpus, memory=memory)
        return await self._object("POST", f"/vms/{vm_id}/resize", body)

    async def tag_vm(self, vm_id: str, *, tags: Sequence[str]) -> dict[str, Any]:
        return await self._object("POST", f"/vms/{vm_id}/tags", {"tags": list(tags)})

    async def disconnect_pool(self, pool_id: str) -> None:
        await self.call("POST", f"/pools/{pool_id}/disconnect")

    async def reconnect_pool(self, pool_id: str, *, vms_loaded: bool = True) -> None:
        await self.call("POST", f"/pools/{pool_id}/reconnect", {"vms_loaded": vms_loaded})

    async def load_pool_vms(self, pool_id: str) -> None:
        await self.call("POST", f"/pools/{pool_id}/load-vms")

    async def events_failing(self, pool_id: str, error: Any) -> None:
        await self.call("POST", f"/pools/{pool_id}/events-failing", {"error": error})

    # -- faults, events, counters ----------------------------------------------
    async def set_faults(self, **changes: Any) -> dict[str, Any]:
        return dict(await self.call("POST", "/faults", changes))

    async def clear_faults(self) -> dict[str, Any]:
        return dict(await self.call("DELETE", "/faults"))

    async def drop_event_streams(self) -> int:
        return int((await self.call("POST", "/events/drop"))["dropped"])

    async def add_token(self, token: str, *, admin: bool = True) -> None:
        """Make XO accept ``token`` (a rotation: add the new one, then revoke the old)."""
        await self.call("POST", "/tokens", {"token": token, "admin": admin})

    async def revoke_token(self, token: str) -> None:
        await self.call("DELETE", f"/tokens/{token}")

    async def request_counts(self) -> dict[str, int]:
        return dict((await self.call("GET", "/requests"))["counts"])

    async def reset_request_counts(self) -> None:
        await self.call("DELETE", "/requests")


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
