"""The health/metrics server over real sockets (HTTP and TLS), and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest

from adapters.observability import HealthServer, PrometheusMetrics

from .pki import CertificateAuthority

pytestmark = pytest.mark.integration


async def fetch(
    url: str, *, context: ssl.SSLContext | None = None, accept: str = ""
) -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as resp,
    ):
        return resp.status, await resp.text(), resp.headers.get("Content-Type", "")


class Switch:
    """A readiness check the test flips."""

    def __init__(self) -> None:
        self.ready = False
        self.reason = "node cache not synced"

    async def __call__(self) -> tuple[bool, str]:
        return self.ready, self.reason


async def test_liveness_always_answers_and_readiness_follows_the_check() -> None:
    check = Switch()
    async with HealthServer(readiness=check, bind_address="127.0.0.1", port=0) as server:
        assert server.port != 0
        for path in ("/healthz", "/livez"):
            assert (await fetch(server.url + path))[:2] == (200, "ok")
        status, body, _ = await fetch(server.url + "/readyz")
        assert status == 503
        assert "node cache not synced" in body
        check.ready = True
        assert (await fetch(server.url + "/readyz"))[:2] == (200, "ok")
        check.ready, check.reason = False, "Xen Orchestra unreachable"
        status, body, _ = await fetch(server.url + "/readyz")
        assert status == 503 and "Xen Orchestra unreachable" in body


async def test_a_failing_or_hanging_readiness_check_means_not_ready() -> None:
    async def broken() -> bool:
        raise RuntimeError("cache exploded")

    async with HealthServer(readiness=broken, bind_address="127.0.0.1", port=0) as server:
        status, body, _ = await fetch(server.url + "/readyz")
    assert status == 503 and "cache exploded" in body

    async def hanging() -> bool:
        await asyncio.sleep(10)
        return True

    async with HealthServer(
        readiness=hanging, bind_address="127.0.0.1", port=0, readiness_timeout=0.2
    ) as server:
        status, body, _ = await fetch(server.url + "/readyz")
    assert status == 503 and "did not answer" in body


async def test_metrics_endpoint_exposes_every_metric_the_ports_feed() -> None:
    metrics = PrometheusMetrics()
    metrics.queue_added(queue="cloud-node")
    metrics.queue_retried(queue="cloud-node")
    metrics.queue_depth(queue="cloud-node", depth=3)
    metrics.queue_work_duration(queue="cloud-node", seconds=0.02)
    metrics.node_synced(controller="cloud-node", result="initialized")
    metrics.taint_removal_delay(seconds=42.0)
    metrics.leader(is_leader=True)
    metrics.observe_xo_request(endpoint="/rest/v0/vms/{id}", seconds=0.05, error=None)
    metrics.observe_xo_request(endpoint="/rest/v0/vms/{id}", seconds=5.0, error="timeout")
    async with HealthServer(metrics=metrics, bind_address="127.0.0.1", port=0) as server:
        status, body, content_type = await fetch(server.url + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    for line in (
        'workqueue_adds_total{name="cloud-node"} 1.0',
        'workqueue_retries_total{name="cloud-node"} 1.0',
        'workqueue_depth{name="cloud-node"} 3.0',
        'workqueue_work_duration_seconds_count{name="cloud-node"} 1.0',
        'xenorchestra_ccm_node_syncs_total{controller="cloud-node",result="initialized"} 1.0',
        'cloud_provider_taint_removal_delay_seconds_bucket{le="60.0"} 1.0',
        'cloud_provider_taint_removal_delay_seconds_bucket{le="300.0"} 1.0',
        'leader_election_master_status{name="cloud-controller-manager"} 1.0',
        'xenorchestra_request_duration_seconds_count{endpoint="/rest/v0/vms/{id}"} 2.0',
        'xenorchestra_request_errors_total{endpoint="/rest/v0/vms/{id}",error="timeout"} 1.0',
    ):
        assert line in body, line
    assert "process_resident_memory_bytes" in body


async def test_openmetrics_is_served_when_asked_for() -> None:
    async with HealthServer(metrics=PrometheusMetrics(), bind_address="127.0.0.1", port=0) as s:
        status, body, content_type = await fetch(
            s.url + "/metrics", accept="application/openmetrics-text; version=1.0.0"
        )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


async def test_metrics_instances_do_not_share_a_registry() -> None:
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.leader(is_leader=True)
    assert second.registry is not first.registry
    assert (
        b'leader_election_master_status{name="cloud-controller-manager"} 0.0'
        in (second.render()[0])
    )


async def test_without_metrics_the_endpoint_is_absent() -> None:
    async with HealthServer(bind_address="127.0.0.1", port=0) as server:
        assert (await fetch(server.url + "/metrics"))[0] == 404
        assert (await fetch(server.url + "/readyz"))[:2] == (200, "ok")


async def test_tls_is_served_with_the_given_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    serving = ca.issue("health", common_name="ccm", hosts=("127.0.0.1",), server=True)
    check = Switch()
    check.ready = True
    async with HealthServer(
        metrics=PrometheusMetrics(),
        readiness=check,
        bind_address="127.0.0.1",
        port=0,
        cert_file=serving.cert,
        key_file=serving.key,
    ) as server:
        assert server.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(ca.cert))
        assert (await fetch(server.url + "/readyz", context=trusted))[:2] == (200, "ok")
        assert (await fetch(server.url + "/metrics", context=trusted))[0] == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await fetch(server.url + "/healthz", context=ssl.create_default_context())


def test_tls_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        HealthServer(cert_file=tmp_path / "cert.pem")
