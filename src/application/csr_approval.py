"""The ``cloud-node-csr-approval`` controller: kubelet serving CSRs approved, or explained.

Off by default (``--controllers=*,cloud-node-csr-approval`` turns it on), as
Kubernetes' own disabled-by-default controllers: approving certificates is a
decision an operator takes. Like the cloud-node controller, it watches (the
kubelet-serving CSRs), queues names on a rate-limited queue and reviews each with
``workers`` workers. A CSR left pending for a reason time may change (its node not
initialized yet, its VM not reporting the address yet, XO unreachable) is reviewed
again with backoff, 0.5 s doubling to 5 minutes: kubelets file their request as they
start, often before the CCM has initialized their node.
"""

from __future__ import annotations

import asyncio

from application.controllers import CLOUD_NODE_CSR_APPROVAL, QueueSettings, new_queue, run_workers
from domain.errors import CCMError
from domain.ports import CertificateRequests, Clock, Metrics
from domain.services.csr_approval import CSRApprovalService, Decision

#: Slower than client-go's 5 ms start: each review of a CSR past its node's checks
#: asks XO, and a kubelet waits minutes for its certificate anyway.
CSR_QUEUE = QueueSettings(base_delay=0.5, max_delay=300.0)


class StillPending(CCMError):
    """A CSR left pending for a reason that may change: reviewed again with backoff."""


class CloudNodeCSRApprovalController:
    """Approves kubelet serving CSRs of the nodes this CCM initialized (see
    ``domain.policies.kubelet_serving``)."""

    name = CLOUD_NODE_CSR_APPROVAL

    def __init__(
        self,
        *,
        service: CSRApprovalService,
        requests: CertificateRequests,
        clock: Clock,
        metrics: Metrics,
        workers: int = 1,
        queue_settings: QueueSettings = CSR_QUEUE,
    ) -> None:
        self._service = service
        self._requests = requests
        self._clock = clock
        self._metrics = metrics
        self._workers = workers
        self.queue = new_queue(CLOUD_NODE_CSR_APPROVAL, clock, metrics, queue_settings)

    async def _handle(self, name: str) -> None:
        review = await self._service.review(name=name)
        if review.decision is Decision.PENDING and review.retry:
            raise StillPending(f"left pending: {review.reason}")

    async def _watch(self) -> None:
        async for name in self._requests.watch():
            await self.queue.add(name)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(), name="csr-approval-watch")
            tg.create_task(
                run_workers(
                    self.queue,
                    self._handle,
                    workers=self._workers,
                ),
                name="csr-approval-workers",
            )
