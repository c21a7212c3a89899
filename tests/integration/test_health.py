"""The health/metrics server over real sockets (HTTP and TLS), and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import resource
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from loguru import logger

from adapters.observability import HealthServer, PrometheusMetrics
from adapters.observability.connection_limits import Limits

from .pki import CertificateAuthority
from .waiting import until

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
    metrics.initial_sync_delay(seconds=43.0)
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
        'node_controller_cloud_provider_taint_removal_delay_seconds_bucket{le="16.0"} 0.0',
        'node_controller_cloud_provider_taint_removal_delay_seconds_bucket{le="64.0"} 1.0',
        'node_controller_initial_node_sync_delay_seconds_bucket{le="64.0"} 1.0',
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


# -- slow and idle clients (issue 30): the limits of Kubernetes' secure serving ---------
FAST = Limits(
    handshake_timeout=0.5,
    header_timeout=0.5,
    idle_timeout=0.7,
    request_timeout=0.5,
    max_connections=4,
    report_every=60.0,
)


def untrusting() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[HealthServer]:
    ca = CertificateAuthority(tmp_path)
    serving = ca.issue("health", common_name="ccm", hosts=("127.0.0.1",), server=True)
    server = HealthServer(
        bind_address="127.0.0.1",
        port=0,
        cert_file=serving.cert,
        key_file=serving.key,
        limits=FAST,
    )
    async with server:
        yield server


async def closed_after(reader: asyncio.StreamReader, within: float) -> float:
    """Seconds until the server closes the connection (it sends nothing before)."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while await reader.read(4096):
            pass
    return time.monotonic() - started


async def test_a_connection_without_request_headers_in_time_is_closed(
    tls_server: HealthServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_server.port, ssl=untrusting())
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        assert await closed_after(reader, within=5) < 2
    finally:
        writer.transport.abort()
    # A trickle of header lines does not keep it open either.
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_server.port, ssl=untrusting())
    try:
        assert await trickled_until_closed(reader, writer, every=0.1, within=5) < 2
    finally:
        writer.transport.abort()


async def trickled_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, every: float, within: float
) -> float:
    """Send a request line, then a header line every ``every`` seconds (never the
    end of the headers); seconds until the server closes the connection."""
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    n = 0
    while time.monotonic() - started < within:
        try:
            async with asyncio.timeout(every):
                if not await reader.read(4096):
                    return time.monotonic() - started
        except TimeoutError:
            pass
        except (ConnectionError, ssl.SSLError):
            return time.monotonic() - started
        n += 1
        writer.write(f"X-Trickle-{n}: x\r\n".encode())
    raise AssertionError(f"still open after {within}s")


async def test_a_tcp_connection_that_never_starts_tls_is_closed(
    tls_server: HealthServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_server.port)
    try:
        assert await closed_after(reader, within=5) < 2
    finally:
        writer.transport.abort()


async def test_an_idle_keep_alive_connection_is_closed(tls_server: HealthServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_server.port, ssl=untrusting())
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"ok")
        # Kept alive (a second request is served), then closed once idle.
        writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"ok")
        assert 0.5 < await closed_after(reader, within=5) < 3
    finally:
        writer.transport.abort()


async def test_a_request_that_runs_out_of_time_is_a_504() -> None:
    async def slow() -> bool:
        await asyncio.sleep(5)
        return True

    async with HealthServer(
        readiness=slow, bind_address="127.0.0.1", port=0, readiness_timeout=10, limits=FAST
    ) as server:
        status, body, content_type = await fetch(server.url + "/readyz")
        assert (await fetch(server.url + "/healthz"))[:2] == (200, "ok")
    assert status == 504
    assert content_type == "application/json"
    assert '"reason": "Timeout"' in body


async def test_idle_connections_beyond_the_cap_make_room_and_are_reported_once(
    tls_server: HealthServer,
) -> None:
    """Four connections at most (FAST): twenty idle ones never keep a probe out; the
    oldest idle ones are closed, one log line says so, none per connection."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(20):
            _, writer = await asyncio.open_connection(
                "127.0.0.1", tls_server.port, ssl=untrusting()
            )
            held.append(writer)
        assert tls_server.guard is not None
        assert tls_server.guard.open_connections <= 4
        context = untrusting()
        for _ in range(5):
            assert (await fetch(tls_server.url + "/healthz", context=context))[:2] == (200, "ok")
    finally:
        for writer in held:
            writer.transport.abort()
        logger.remove(sink)
    reports = [line for line in lines if "secure port:" in line]
    assert len(reports) == 1, lines
    # The burst is over: its memory is handed back to the system.
    guard = tls_server.guard
    assert guard is not None
    await until(lambda: guard.trims > 0, within=5, every=0.1)
    assert guard.trims == 1
    assert "closed at the connection limit" in reports[0]
    assert "limits: 4 open connections" in reports[0]


async def test_the_cap_is_a_quarter_of_the_descriptor_limit_when_that_is_lower() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert Limits().connection_cap() == 64
        if hard == resource.RLIM_INFINITY or hard >= 1024:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
            assert Limits().connection_cap() == 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
