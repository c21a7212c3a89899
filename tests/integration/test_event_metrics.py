"""What became of each node event, as /metrics counts it (the events-dropped alert).

The real event recorder against the real API server (and an unreachable one),
measured by the real Prometheus adapter.
"""

from __future__ import annotations

import pytest

from adapters.kubernetes import KubeClient, KubernetesEventRecorder
from adapters.kubernetes.configuration import ApiConfig
from adapters.kubernetes.convert import node_from_object
from adapters.observability import PrometheusMetrics
from domain.model import EventType, Node

from .controlplane import free_port
from .kube import create_node, unique

pytestmark = pytest.mark.integration


def counted(metrics: PrometheusMetrics, type_: str, result: str) -> float | None:
    return metrics.registry.get_sample_value(
        "xenorchestra_ccm_events_total", {"type": type_, "result": result}
    )


async def test_recorded_and_dropped_events_are_counted_by_type(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("evm")))
    metrics = PrometheusMetrics(process_metrics=False)
    recorder = KubernetesEventRecorder(kube, observer=metrics)
    await recorder.record(
        node=node, type=EventType.NORMAL, reason="Synced", message="ok", source="cloud-node"
    )
    for i in range(30):  # the spam filter lets 24 more through (burst 25 per node)
        await recorder.record(
            node=node,
            type=EventType.WARNING,
            reason="InvalidVMTag",
            message=f"tag {i}",
            source="cloud-node",
        )

    assert counted(metrics, "Normal", "recorded") == 1
    assert counted(metrics, "Warning", "recorded") == 24
    assert counted(metrics, "Warning", "dropped") == 6
    assert counted(metrics, "Normal", "failed") == 0


async def test_an_event_the_api_server_never_got_is_counted_failed() -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    configuration = ApiConfig(host=f"http://127.0.0.1:{free_port()}")
    async with KubeClient(configuration, name="down") as client:
        recorder = KubernetesEventRecorder(client, observer=metrics)
        await recorder.record(
            node=Node(name="n1", uid="u1"),
            type=EventType.WARNING,
            reason="DeletingNodeFailed",
            message="x",
            source="cloud-node-lifecycle-controller",
        )
    assert counted(metrics, "Warning", "failed") == 1
    assert counted(metrics, "Warning", "recorded") == 0
