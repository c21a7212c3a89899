"""Events as the API server stores them: core/v1 about Nodes, events.k8s.io/v1 at startup."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.kubernetes import KubeClient, KubernetesEventRecorder, record_client_check_failure
from adapters.kubernetes.configuration import ApiConfig
from adapters.kubernetes.convert import node_from_object
from adapters.logging_setup import MASK, register_secret
from domain.model import EventType, Node

from .controlplane import free_port
from .kube import create_node, unique

pytestmark = pytest.mark.integration


async def node_events(kube: KubeClient, node: Node) -> list[dict[str, Any]]:
    answer = await kube.request(
        "GET",
        "/api/v1/namespaces/default/events",
        query=[("fieldSelector", f"involvedObject.kind=Node,involvedObject.name={node.name}")],
    )
    return list(answer["items"])


async def test_node_event_is_recorded_like_client_go_does(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("ev")))
    recorder = KubernetesEventRecorder(kube, host="ccm-0")
    await recorder.record(
        node=node,
        type=EventType.NORMAL,
        reason="Synced",
        message="Node synced successfully",
        source="cloud-node-controller",
    )
    [event] = await node_events(kube, node)
    assert event["involvedObject"] == {
        "kind": "Node",
        "name": node.name,
        "uid": node.uid,
        "apiVersion": "v1",
    }
    assert event["reason"] == "Synced"
    assert event["message"] == "Node synced successfully"
    assert event["type"] == "Normal"
    assert event["source"] == {"component": "cloud-node-controller", "host": "ccm-0"}
    assert event["count"] == 1
    assert event["firstTimestamp"] and event["lastTimestamp"]
    assert event["metadata"]["name"].startswith(f"{node.name}.")


async def test_a_repeated_event_bumps_the_count_of_one_object(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("rep")))
    recorder = KubernetesEventRecorder(kube)
    for _ in range(3):
        await recorder.record(
            node=node,
            type=EventType.WARNING,
            reason="NodeZoneChanged",
            message="zone h1 -> h2",
            source="cloud-node-label-sync-controller",
        )
    await recorder.record(
        node=node,
        type=EventType.NORMAL,
        reason="DeletingNode",
        message="Deleting node because its VM no longer exists",
        source="cloud-node-lifecycle-controller",
    )
    events = {e["reason"]: e for e in await node_events(kube, node)}
    assert set(events) == {"NodeZoneChanged", "DeletingNode"}
    assert events["NodeZoneChanged"]["count"] == 3
    assert events["NodeZoneChanged"]["type"] == "Warning"
    assert events["DeletingNode"]["count"] == 1
    assert recorder.recorded == 4


async def test_recording_never_raises_when_the_api_is_unreachable() -> None:
    configuration = ApiConfig(host=f"http://127.0.0.1:{free_port()}")
    async with KubeClient(configuration, name="down") as client:
        recorder = KubernetesEventRecorder(client)
        await recorder.record(
            node=Node(name="n1", uid="u1"),
            type=EventType.NORMAL,
            reason="Synced",
            message="Node synced successfully",
            source="cloud-node-controller",
        )
    assert recorder.failed == 1


async def test_floods_of_events_about_one_node_are_dropped(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("spam")))
    recorder = KubernetesEventRecorder(kube)
    for i in range(30):
        await recorder.record(
            node=node,
            type=EventType.WARNING,
            reason="InvalidVMTag",
            message=f"tag {i}",
            source="cloud-node-controller",
        )
    assert recorder.recorded == 25
    assert recorder.dropped == 5
    # 9 different messages, then the aggregate of the 16 that follow (client-go's)
    events = await node_events(kube, node)
    assert len(events) == 10
    [combined] = [e for e in events if e["count"] > 1]
    assert combined["count"] == 16
    assert combined["message"] == "(combined from similar events): tag 24"


async def test_similar_events_are_aggregated_like_client_go_does(kube: KubeClient) -> None:
    node = node_from_object(await create_node(kube, unique("agg")))
    recorder = KubernetesEventRecorder(kube)
    for i in range(12):
        await recorder.record(
            node=node,
            type=EventType.WARNING,
            reason="InvalidVMTag",
            message=f"VM tag 'k8s-{i}' ignored",
            source="cloud-node-controller",
        )
    await recorder.record(  # another reason is not similar
        node=node,
        type=EventType.NORMAL,
        reason="Synced",
        message="Node synced successfully",
        source="cloud-node-controller",
    )
    events = await node_events(kube, node)
    by_message = {e["message"]: e["count"] for e in events}
    assert len(events) == 11
    assert by_message["(combined from similar events): VM tag 'k8s-11' ignored"] == 3
    assert all(by_message[f"VM tag 'k8s-{i}' ignored"] == 1 for i in range(9))
    assert by_message["Node synced successfully"] == 1


async def test_client_check_failure_is_an_events_v1_warning_about_the_pod(
    kube: KubeClient,
) -> None:
    pod = unique("ccm-pod")
    env = {"POD_NAME": pod, "POD_NAMESPACE": "kube-system", "POD_UID": "1234-abcd"}
    assert await record_client_check_failure(kube, error="connection refused", environ=env)
    answer = await kube.request(
        "GET",
        "/apis/events.k8s.io/v1/namespaces/kube-system/events",
        query=[("fieldSelector", f"regarding.name={pod}")],
    )
    [event] = answer["items"]
    assert event["reason"] == "FailedToCheckClient"
    assert event["action"] == "CheckClient"
    assert event["type"] == "Warning"
    assert event["reportingController"] == "xenorchestra"
    assert event["reportingInstance"] == pod
    assert event["regarding"] == {
        "kind": "Pod",
        "namespace": "kube-system",
        "name": pod,
        "uid": "1234-abcd",
        "apiVersion": "v1",
    }
    assert "connection refused" in event["note"]
    assert event["eventTime"]

    # a crash-looping pod bumps one event's series instead of adding events
    assert await record_client_check_failure(kube, error="still refused", environ=env)
    again = await kube.request(
        "GET", f"/apis/events.k8s.io/v1/namespaces/kube-system/events/{event['metadata']['name']}"
    )
    assert again["series"]["count"] == 2
    assert again["series"]["lastObservedTime"]
    assert "connection refused" in again["note"]  # notes are immutable
    assert await record_client_check_failure(kube, error="refused again", environ=env)
    third = await kube.request(
        "GET", f"/apis/events.k8s.io/v1/namespaces/kube-system/events/{event['metadata']['name']}"
    )
    assert third["series"]["count"] == 3


async def test_client_check_failure_without_pod_variables_is_about_the_component(
    kube: KubeClient,
) -> None:
    namespace = "kube-public"
    assert await record_client_check_failure(
        kube, error="401 Unauthorized", environ={"POD_NAMESPACE": namespace}
    )
    answer = await kube.request(
        "GET",
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        query=[("fieldSelector", "reason=FailedToCheckClient")],
    )
    [event] = answer["items"]
    assert event["regarding"]["kind"] == "Component"
    assert event["regarding"]["name"] == "xenorchestra"
    assert event["reportingInstance"] == "xenorchestra-cloud-controller-manager"


async def test_client_check_failure_reports_false_when_it_cannot_write() -> None:
    configuration = ApiConfig(host=f"http://127.0.0.1:{free_port()}")
    async with KubeClient(configuration, name="down") as client:
        assert not await record_client_check_failure(client, error="boom", environ={})


async def test_no_event_quotes_a_registered_secret(kube: KubeClient) -> None:
    """An Event is not a log record, so the log mask never sees it: the recorder masks
    what it writes, whoever built the text (an error quoting a header, a VM's name)."""
    secret = "ev3nt-s3cr3t-t0k3n-9f1e"
    register_secret(f"{secret}\n")
    node = node_from_object(await create_node(kube, unique("sec")))
    recorder = KubernetesEventRecorder(kube)
    await recorder.record(
        node=node,
        type=EventType.WARNING,
        reason="SyncFailed",
        message=f"Illegal header value b'authenticationToken={secret}\\n'",
        source="cloud-node-controller",
    )
    pod = unique("sec-pod")
    env = {"POD_NAME": pod, "POD_NAMESPACE": "kube-system"}
    assert await record_client_check_failure(kube, error=f"refused token {secret}", environ=env)

    [node_event] = await node_events(kube, node)
    answer = await kube.request(
        "GET",
        "/apis/events.k8s.io/v1/namespaces/kube-system/events",
        query=[("fieldSelector", f"regarding.name={pod}")],
    )
    [check_event] = answer["items"]
    for text in (node_event["message"], check_event["note"]):
        assert secret not in text, text
        assert MASK in text, text
