"""Kubelet serving certificate requests in memory, with the API server's guarantees."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from domain.certificates import CertificateRequest, CSRState
from domain.errors import CertificateRequestError, CertificateRequestGoneError


class InMemoryCertificateRequests:
    """Implements the CertificateRequests port like the API server would.

    - ``file`` adds a CSR as a kubelet files one (a uid and a resourceVersion given);
    - every write bumps ``resource_version``; an approval of another CSR than the one
      read (a new uid under the name) is refused as gone, of one no longer pending
      answers False;
    - ``approvals`` keeps the (name, reason, message) of each approval;
      ``fail_writes`` makes approvals fail (API server down).
    """

    def __init__(self) -> None:
        self.requests: dict[str, CertificateRequest] = {}
        self.approvals: list[tuple[str, str, str]] = []
        self.fail_writes: CertificateRequestError | None = None
        self._rv = itertools.count(1)
        self._watchers: list[asyncio.Queue[str]] = []

    def _stamp(self, csr: CertificateRequest) -> CertificateRequest:
        csr = replace(csr, resource_version=str(next(self._rv)))
        self.requests[csr.name] = csr
        self._notify(csr.name)
        return csr

    def _notify(self, name: str) -> None:
        for queue in self._watchers:
            queue.put_nowait(name)

    # -- driving it ------------------------------------------------------------
    def file(self, csr: CertificateRequest) -> CertificateRequest:
        return self._stamp(replace(csr, uid=csr.uid or str(uuid.uuid4())))

    def set_state(self, name: str, state: CSRState) -> CertificateRequest:
        """Another approver (or the signer) acted on the CSR."""
        return self._stamp(replace(self.requests[name], state=state))

    def delete(self, name: str) -> None:
        self.requests.pop(name, None)
        self._notify(name)

    # -- the port --------------------------------------------------------------
    async def get(self, *, name: str) -> CertificateRequest | None:
        return self.requests.get(name)

    async def watch(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._watchers.append(queue)
        try:
            for name in list(self.requests):
                yield name
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(queue)

    async def approve(self, *, request: CertificateRequest, reason: str, message: str) -> bool:
        current = self.requests.get(request.name)
        if current is None or current.uid != request.uid:
            raise CertificateRequestGoneError(f"CSR {request.name} no longer exists")
        if current.state is not CSRState.PENDING:
            return False
        if self.fail_writes is not None:
            raise self.fail_writes
        self.approvals.append((request.name, reason, message))
        self._stamp(replace(current, state=CSRState.APPROVED))
        return True
