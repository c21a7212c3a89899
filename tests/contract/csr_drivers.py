"""The world around a CertificateRequests subject: kubelets filing serving CSRs,
another approver deciding, someone deleting them.

The in-memory world files the value a kubelet's request decodes to; the
Kubernetes world files real PEM requests as the node (client certificate of the
control plane's CA) on the real API server, and waits until the subject's cache
has seen the result, so the same test body holds for both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

from adapters.kubernetes import ApiError, KubeClient
from adapters.kubernetes.csr import KubernetesCertificateRequests
from adapters.memory import InMemoryCertificateRequests
from domain.certificates import CertificateRequest, CSRState
from domain.ports import CertificateRequests
from tests.integration.controlplane import ControlPlane
from tests.integration.kubelet_csr import (
    CSRS,
    ECDSA_SERVING,
    allow_nodes_to_request,
    file_request,
    kubelet_client,
    serving_request,
)
from tests.integration.waiting import until


class CSRWorld(Protocol):
    requests: CertificateRequests

    async def file(
        self,
        name: str,
        *,
        node: str,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        emails: Sequence[str] = (),
        usages: Sequence[str] = ECDSA_SERVING,
    ) -> CertificateRequest:
        """Node ``node`` files a serving CSR; the subject's view of it once seen."""
        ...

    async def deny(self, name: str) -> CertificateRequest:
        """Another approver denies it; the subject's view once seen."""
        ...

    async def remove(self, name: str) -> None: ...

    async def cleanup(self) -> None: ...


class MemoryCSRWorld:
    def __init__(self) -> None:
        self.memory = InMemoryCertificateRequests()
        self.requests: CertificateRequests = self.memory

    async def file(
        self,
        name: str,
        *,
        node: str,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        emails: Sequence[str] = (),
        usages: Sequence[str] = ECDSA_SERVING,
    ) -> CertificateRequest:
        return self.memory.file(
            CertificateRequest(
                name=name,
                username=f"system:node:{node}",
                groups=("system:nodes", "system:authenticated"),
                usages=tuple(usages),
                common_name=f"system:node:{node}",
                organizations=("system:nodes",),
                dns_names=tuple(dns),
                ip_addresses=tuple(ips),
                other_names=tuple(f"email:{e}" for e in emails),
            )
        )

    async def deny(self, name: str) -> CertificateRequest:
        return self.memory.set_state(name, CSRState.DENIED)

    async def remove(self, name: str) -> None:
        self.memory.delete(name)

    async def cleanup(self) -> None:
        return None


class KubernetesCSRWorld:
    def __init__(
        self, kube: KubeClient, plane: ControlPlane, store: KubernetesCertificateRequests
    ) -> None:
        self.kube = kube
        self.plane = plane
        self.kubernetes = store
        self.requests: CertificateRequests = store
        self.names: list[str] = []
        self._kubelets: dict[str, KubeClient] = {}

    async def _kubelet(self, node: str) -> KubeClient:
        if node not in self._kubelets:
            await allow_nodes_to_request(self.kube)
            self._kubelets[node] = await kubelet_client(self.plane, node)
        return self._kubelets[node]

    async def file(
        self,
        name: str,
        *,
        node: str,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        emails: Sequence[str] = (),
        usages: Sequence[str] = ECDSA_SERVING,
    ) -> CertificateRequest:
        self.names.append(name)
        pem = serving_request(node, dns=dns, ips=ips, emails=emails)
        created = await file_request(await self._kubelet(node), name, pem, usages=usages)
        uid = created["metadata"]["uid"]
        return await self.seen(name, lambda csr: csr.uid == uid)

    async def deny(self, name: str) -> CertificateRequest:
        obj = await self.kube.request("GET", f"{CSRS}/{name}")
        obj.setdefault("status", {})["conditions"] = [
            {"type": "Denied", "status": "True", "reason": "Test", "message": "another approver"}
        ]
        await self.kube.request("PUT", f"{CSRS}/{name}/approval", body=obj)
        return await self.seen(name, lambda csr: csr.state is CSRState.DENIED)

    async def remove(self, name: str) -> None:
        await self.kube.request("DELETE", f"{CSRS}/{name}")

        async def absent() -> bool:
            return await self.requests.get(name=name) is None

        await until(absent)

    async def seen(
        self, name: str, check: Callable[[CertificateRequest], bool]
    ) -> CertificateRequest:
        found: list[CertificateRequest] = []

        async def matches() -> bool:
            csr = await self.requests.get(name=name)
            if csr is not None and check(csr):
                found.append(csr)
            return bool(found)

        await until(matches)
        return found[0]

    async def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(ApiError):
                await self.kube.request("DELETE", f"{CSRS}/{name}")
        await asyncio.gather(*(client.aclose() for client in self._kubelets.values()))
