"""Queued node events on the real API server: a controller never waits for one,
a full queue drops and counts, and shutdown writes what is queued."""

from __future__ import annotations

import asyncio

import pytest

from adapters.kubernetes import KubeClient, KubernetesEventRecorder
from adapters.kubernetes.configuration import ApiConfig
from adapters.kubernetes.convert import node_from_object
from adapters.kubernetes.event_queue import QueuedEventRecorder
from adapters.observability import PrometheusMetrics
from domain.model import EventType, Node

from .kube import create_node, unique
from .test_events import node_events

pytestmark = pytest.mark.integration

SOURCE = "cloud-node-controller"


async def test_recording_returns_before_any_request_and_the_sender_writes_it(
    kube: KubeClient,
) -> None:
    node = node_from_object(await create_node(kube, unique("q")))
    writer = KubernetesEventRecorder(kube)
    async with QueuedEventRecorder(writer) as recorder:
        before = kube.requests.copy()
        await recorder.record(
            node=node, type=EventType.NORMAL, reason="Synced", message="ok", source=SOURCE
        )
        assert kube.requests == before, "record() must only enqueue"
        await recorder.flush()
    assert writer.recorded == 1
    [event] = await node_events(kube, node)
    assert (event["reason"], event["count"]) == ("Synced", 1)


async def test_a_worker_never_waits_for_an_api_server_that_does_not_answer() -> None:
    """The API server takes the first event's request and never answers it: every
    record() still returns (it only enqueues), while nothing has been written."""
    reached = asyncio.Event()
    hold = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()
        await hold.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    configuration = ApiConfig(host=f"http://127.0.0.1:{port}")
    try:
        async with KubeClient(configuration, name="silent") as client:
            writer = KubernetesEventRecorder(client)
            recorder = QueuedEventRecorder(writer, flush_timeout=0.1)

            async def record(i: int) -> None:
                await recorder.record(
                    node=Node(name=f"n{i}", uid=f"u{i}"),
                    type=EventType.NORMAL,
                    reason="Synced",
                    message="ok",
                    source=SOURCE,
                )

            await record(0)
            await asyncio.wait_for(reached.wait(), 10)  # the sender is stuck on it now
            # A recorder that waited for the server would hang here for the
            # client's 30 s read timeout; the guard only turns a hang into a failure.
            await asyncio.wait_for(asyncio.gather(*(record(i) for i in range(1, 50))), 10)
            assert writer.recorded == writer.failed == 0
            await recorder.aclose()
    finally:
        hold.set()
        server.close()
        await server.wait_closed()


async def test_a_full_queue_drops_the_event_and_counts_it(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("full")))
    metrics = PrometheusMetrics(process_metrics=False)
    writer = KubernetesEventRecorder(kube, observer=metrics)
    async with QueuedEventRecorder(writer, size=3, observer=metrics) as recorder:
        # No await yields to the sender in between: the queue fills up.
        for i in range(5):
            await recorder.record(
                node=node,
                type=EventType.WARNING,
                reason="InvalidVMTag",
                message=f"t{i}",
                source=SOURCE,
            )
        assert recorder.dropped == 2
        await recorder.flush()
    sample = metrics.registry.get_sample_value
    assert sample("xenorchestra_ccm_events_total", {"type": "Warning", "result": "dropped"}) == 2
    assert sample("xenorchestra_ccm_events_total", {"type": "Warning", "result": "recorded"}) == 3
    assert sorted(e["message"] for e in await node_events(kube, node)) == ["t0", "t1", "t2"]


async def test_shutdown_writes_what_is_still_queued(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("close")))
    writer = KubernetesEventRecorder(kube)
    recorder = QueuedEventRecorder(writer)
    for reason in ("Synced", "InvalidVMTag", "DeletingNode"):
        await recorder.record(
            node=node, type=EventType.NORMAL, reason=reason, message="m", source=SOURCE
        )
    await recorder.aclose()
    assert writer.recorded == 3
    await recorder.record(  # after close: ignored, never raises
        node=node, type=EventType.NORMAL, reason="Late", message="m", source=SOURCE
    )
    await asyncio.sleep(0)
    assert {e["reason"] for e in await node_events(kube, node)} == {
        "Synced",
        "InvalidVMTag",
        "DeletingNode",
    }
