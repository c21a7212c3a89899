"""The fake XO of the node suite, driven over its ``/_control`` API.

It runs inside the suite's network namespace at the node's address (the CCM pods
reach it there); the tests reach it through the veth, with a synchronous client
(the node tests are plain functions: they wait on a real cluster, not on a loop).
"""

from __future__ import annotations

from typing import Any

import httpx

from entrypoints.testkits.fake_xo.control import PREFIX

#: The token the fake XO accepts by default, and so the one in the CCM's Secret.
TOKEN = "fake-xo-token"
GIB = 1024**3


class FakeXO:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(base_url=url + PREFIX, timeout=10.0)

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._client.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def add_pool(self, name_label: str) -> dict[str, Any]:
        return dict(self.call("POST", "/pools", {"name_label": name_label}))

    def add_host(self, *, pool_id: str, name_label: str) -> dict[str, Any]:
        return dict(self.call("POST", "/hosts", {"pool_id": pool_id, "name_label": name_label}))

    def add_vm(
        self, *, name_label: str, host_id: str, address: str, cpus: int = 2, memory: int = 4 * GIB
    ) -> dict[str, Any]:
        body = {
            "name_label": name_label,
            "host_id": host_id,
            "cpus": cpus,
            "memory": memory,
            "addresses": {"0/ipv4/0": address},
        }
        return dict(self.call("POST", "/vms", body))

    def stop_vm(self, vm_id: str) -> None:
        self.call("POST", f"/vms/{vm_id}/stop", {})

    def delete_vm(self, vm_id: str) -> None:
        self.call("DELETE", f"/vms/{vm_id}")

    def set_faults(self, **faults: Any) -> None:
        self.call("POST", "/faults", faults)

    def clear_faults(self) -> None:
        self.call("DELETE", "/faults")

    def request_counts(self) -> dict[str, int]:
        return dict(self.call("GET", "/requests")["counts"])

    def reset_request_counts(self) -> None:
        self.call("DELETE", "/requests")

    def rename_vm(self, vm_id: str, name_label: str) -> None:
        self.call("POST", f"/vms/{vm_id}/rename", {"name_label": name_label})
