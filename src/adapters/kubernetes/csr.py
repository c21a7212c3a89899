"""The CertificateRequests port on a real API server: kubelet serving CSRs.

The ``kubernetes.io/kubelet-serving`` CSRs (a field selector on ``spec.signerName``:
kubelets' client certificate requests are never listed) are kept in a list+watch
cache, as the node store keeps Nodes, so reviewing a CSR costs no request. An
approval reads the CSR again, checks it is the same one (uid) and still pending,
and adds the ``Approved`` condition through the ``approval`` subresource with the
resourceVersion just read: a CSR another approver acted on meanwhile is never
approved over its decision. The spec of a CSR is immutable, so the cached one the
decision was made on is the one approved.

RBAC (least privilege, ``deploy/kubernetes/rbac.yaml``): get, list and watch
``certificatesigningrequests``; update ``certificatesigningrequests/approval``;
``approve`` on ``signers`` named ``kubernetes.io/kubelet-serving`` only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from loguru import logger

from adapters.kubernetes.client import KubeClient
from adapters.kubernetes.convert import parse_time
from adapters.kubernetes.errors import ApiError
from adapters.kubernetes.reflector import Reflector
from adapters.kubernetes.wire import JsonObject
from domain.certificates import KUBELET_SERVING_SIGNER, CertificateRequest, CSRState
from domain.errors import (
    CertificateRequestConflictError,
    CertificateRequestError,
    CertificateRequestGoneError,
)

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SELECTOR = (("fieldSelector", f"spec.signerName={KUBELET_SERVING_SIGNER}"),)
#: Terminal conditions first: a CSR both approved and failed (unsigned) is failed.
_STATES = (
    ("Failed", CSRState.FAILED),
    ("Denied", CSRState.DENIED),
    ("Approved", CSRState.APPROVED),
)


def _state(status: Mapping[str, Any]) -> CSRState:
    conditions = status.get("conditions") or []
    types = {
        str(c.get("type"))
        for c in conditions
        if isinstance(c, dict) and str(c.get("status") or "True") == "True"
    }
    return next((state for kind, state in _STATES if kind in types), CSRState.PENDING)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def request_from_object(obj: JsonObject) -> CertificateRequest:
    """A CSR object as the domain reads it; its PEM request decoded (``cryptography``,
    imported on the first call)."""
    from adapters.kubernetes.csr_request import decode_request

    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    try:
        pem = base64.b64decode(str(spec.get("request") or ""), validate=True)
    except (binascii.Error, ValueError):
        pem = b""
    decoded = decode_request(pem)
    return CertificateRequest(
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        signer_name=str(spec.get("signerName") or ""),
        username=str(spec.get("username") or ""),
        groups=_strings(spec.get("groups")),
        usages=_strings(spec.get("usages")),
        state=_state(obj.get("status") or {}),
        common_name=decoded.common_name,
        organizations=decoded.organizations,
        other_subject=decoded.other_subject,
        dns_names=decoded.dns_names,
        ip_addresses=decoded.ip_addresses,
        other_names=decoded.other_names,
        request_problem=decoded.problem,
        created_at=parse_time(meta.get("creationTimestamp")),
    )


def _readable(obj: JsonObject) -> CertificateRequest | None:
    """The CSR, or None (logged) for an object without a name: one odd object must not
    keep the cache from syncing."""
    csr = request_from_object(obj)
    if not csr.name:
        logger.error("CSR cache: skipping an object without a name")
        return None
    return csr


class KubernetesCertificateRequests:
    """Implements ``domain.ports.CertificateRequests`` against kube-apiserver.

    ``start()`` (or ``async with``), then reads wait for the first list.
    """

    def __init__(
        self, client: KubeClient, *, page_size: int = 500, watch_timeout: float = 300.0
    ) -> None:
        self._client = client
        self._requests: dict[str, CertificateRequest] = {}
        self._watchers: set[asyncio.Queue[str]] = set()
        self.reflector: Reflector[CertificateRequest] = Reflector(
            client,
            path=CSRS,
            selector=SELECTOR,
            convert=_readable,
            on_sync=self._replace,
            on_event=self._on_event,
            page_size=page_size,
            watch_timeout=watch_timeout,
        )

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        self.reflector.start(name="kube-csr-reflector")

    async def stop(self) -> None:
        await self.reflector.stop()

    async def __aenter__(self) -> KubernetesCertificateRequests:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def synced(self) -> bool:
        return self.reflector.synced

    async def wait_synced(self) -> None:
        if not self.reflector.synced and not self.reflector.started:
            raise CertificateRequestError("CSR cache not started: call start() first")
        await self.reflector.wait_synced()

    # -- the cache --------------------------------------------------------
    def _notify(self, name: str) -> None:
        for queue in self._watchers:
            queue.put_nowait(name)

    def _store(self, csr: CertificateRequest) -> None:
        self._requests[csr.name] = csr
        self._notify(csr.name)

    def _replace(self, requests: Sequence[CertificateRequest]) -> None:
        names = {csr.name for csr in requests}
        for gone in [name for name in self._requests if name not in names]:
            del self._requests[gone]
            self._notify(gone)
        for csr in requests:
            self._store(csr)

    def _on_event(self, kind: str, obj: JsonObject) -> None:
        if kind == "DELETED":
            name = str((obj.get("metadata") or {}).get("name") or "")
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            current = self._requests.get(name)
            if current is not None and (not uid or current.uid == uid):
                del self._requests[name]
                self._notify(name)
            return
        csr = _readable(obj)
        if csr is not None:
            self._store(csr)

    # -- the port ---------------------------------------------------------
    async def get(self, *, name: str) -> CertificateRequest | None:
        await self.wait_synced()
        return self._requests.get(name)

    async def watch(self) -> AsyncIterator[str]:
        await self.wait_synced()
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._watchers.add(queue)  # subscribe and snapshot with no await in between
        names = list(self._requests)
        try:
            for name in names:
                yield name
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    async def approve(self, *, request: CertificateRequest, reason: str, message: str) -> bool:
        path = f"{CSRS}/{quote(request.name, safe='')}"
        try:
            current = await self._client.request("GET", path)
        except ApiError as err:
            if err.not_found:
                raise CertificateRequestGoneError(f"CSR {request.name} no longer exists") from None
            raise CertificateRequestError(f"CSR {request.name}: cannot read it: {err}") from None
        if str((current.get("metadata") or {}).get("uid") or "") != request.uid:
            raise CertificateRequestGoneError(f"CSR {request.name} was replaced by another one")
        status = current.setdefault("status", {})
        if _state(status) is not CSRState.PENDING:
            return False
        conditions = list(status.get("conditions") or [])
        conditions.append(
            {"type": "Approved", "status": "True", "reason": reason, "message": message}
        )
        status["conditions"] = conditions
        try:
            written = await self._client.request("PUT", f"{path}/approval", body=current)
        except ApiError as err:
            if err.not_found:
                raise CertificateRequestGoneError(f"CSR {request.name} no longer exists") from None
            if err.status == 409:
                raise CertificateRequestConflictError(
                    f"CSR {request.name} changed since it was read"
                ) from None
            raise CertificateRequestError(f"CSR {request.name}: cannot approve it: {err}") from None
        csr = _readable(written)
        if csr is not None:
            self._store(csr)
        return True
