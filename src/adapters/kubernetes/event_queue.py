"""Node events off the controllers' path: a bounded queue and one background sender.

client-go's broadcaster works this way: ``Recorder.Event`` puts the event on
a channel of 1,000 and returns; one goroutine correlates and writes them; a
full channel drops the event. Here too :meth:`QueuedEventRecorder.record`
only enqueues, so a worker never waits for an event request, and the sender
writes them through a client of their own (``--event-qps`` /
``--event-burst``, kubelet's pair), so events never spend the
``--kube-api-qps`` budget registration needs. An event that finds the queue
full is dropped and counted (``xenorchestra_ccm_events_total{result="dropped"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from loguru import logger

from adapters.kubernetes.events import EventObserver, KubernetesEventRecorder
from domain.model import EventType, Node

#: client-go's ``maxQueuedEvents``.
QUEUE_SIZE = 1000
#: How long ``aclose`` lets the sender write what is still queued.
FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class _Pending:
    node: Node
    type: EventType
    reason: str
    message: str
    source: str
    at: datetime


class QueuedEventRecorder:
    """Implements ``domain.ports.EventRecorder``: enqueue now, write in the background.

    The sender task starts with the first event; :meth:`aclose` writes what is
    queued (within ``flush_timeout``) and stops it; :meth:`flush` waits until
    everything queued so far was written (tests, shutdown).
    """

    def __init__(
        self,
        writer: KubernetesEventRecorder,
        *,
        size: int = QUEUE_SIZE,
        observer: EventObserver | None = None,
        flush_timeout: float = FLUSH_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.writer = writer
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max(1, size))
        self._observer = observer
        self._flush_timeout = flush_timeout
        self._now = clock
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: events dropped because the queue was full
        self.dropped = 0

    async def record(
        self, *, node: Node, type: EventType, reason: str, message: str, source: str
    ) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(_Pending(node, type, reason, message, source, self._now()))
        except asyncio.QueueFull:
            self.dropped += 1
            self._observe(type)
            logger.debug("event {} on node {} dropped (event queue full)", reason, node.name)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="kube-event-sender")

    def _observe(self, kind: EventType) -> None:
        if self._observer is None:
            return
        try:
            self._observer.observe_kubernetes_event(type=kind.value, result="dropped")
        except Exception as err:  # the observer is someone else's code
            logger.warning("event observer failed: {}", err.__class__.__name__)

    async def _send(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.writer.record(
                    node=event.node,
                    type=event.type,
                    reason=event.reason,
                    message=event.message,
                    source=event.source,
                    at=event.at,
                )
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Return once every event queued so far has been written (or failed)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Write what is queued (at most ``flush_timeout`` seconds), then stop."""
        self._closed = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), self._flush_timeout)
        left = self._queue.qsize()
        if left:
            logger.warning("{} node events not written at shutdown", left)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def __aenter__(self) -> QueuedEventRecorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
