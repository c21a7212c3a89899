"""KubeClient: configuration loading, client-side rate limiting, bounded concurrency,
backoff on 429/5xx, and no secret in the logs.

Backoff is exercised against a small aiohttp stand-in (a real API server will
not answer 503 on demand); everything else against the real one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s
from loguru import logger

from adapters.kubernetes import (
    ApiError,
    ApiUnavailableError,
    ClientSettings,
    KubeClient,
    KubeConfigError,
    LeaseLeaderElector,
    connect,
)
from adapters.kubernetes.configuration import api_config, load

from .controlplane import free_port
from .stand_in import StandIn

pytestmark = pytest.mark.integration

FAST = ClientSettings(qps=0, burst=1, backoff_base=0.01, backoff_max=0.05, max_retries=3)


def client_for(url: str, settings: ClientSettings = FAST, token: str = "") -> KubeClient:
    configuration = k8s.Configuration(host=url)
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return KubeClient(api_config(configuration), settings, name="test")


async def test_connect_reads_a_kubeconfig_and_talks_to_the_server(admin_kubeconfig: Path) -> None:
    async with await connect(str(admin_kubeconfig)) as client:
        version = await client.request("GET", "/version")
    assert version["gitVersion"].startswith("v1.")


async def test_a_missing_kubeconfig_fails_at_connect(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="nope"):
        await connect(str(tmp_path / "nope"))


async def test_without_kubeconfig_outside_a_cluster_in_cluster_config_is_refused() -> None:
    with pytest.raises(KubeConfigError, match="in-cluster"):
        await connect(None)


async def test_a_client_given_a_loader_loads_its_kubeconfig_on_first_request(
    admin_kubeconfig: Path, tmp_path: Path
) -> None:
    async with KubeClient(lambda: load(str(admin_kubeconfig))) as client:
        assert client.server == ""  # nothing read yet
        assert (await client.request("GET", "/version"))["major"] == "1"
        assert client.server.startswith("https://127.0.0.1:")
    async with KubeClient(lambda: load(str(tmp_path / "absent"))) as broken:
        with pytest.raises(KubeConfigError):
            await broken.request("GET", "/version")


async def test_requests_are_rate_limited_by_qps_and_burst(admin_kubeconfig: Path) -> None:
    settings = ClientSettings(qps=10, burst=2)
    async with await connect(str(admin_kubeconfig), settings=settings) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.request("GET", "/version") for _ in range(7)))
        elapsed = time.monotonic() - started
    # 2 at once (burst), then 5 more at 10/s
    assert elapsed >= 0.45
    assert client.requests["GET"] == 7


async def test_concurrent_requests_are_bounded_by_the_worker_pool(stand_in: StandIn) -> None:
    stand_in.delay = 0.2
    settings = ClientSettings(qps=0, burst=1, workers=2)
    async with client_for(stand_in.url, settings) as client:
        await asyncio.gather(*(client.request("GET", "/api/v1/nodes") for _ in range(5)))
    assert stand_in.max_in_flight == 2


async def test_server_errors_are_retried_with_backoff(stand_in: StandIn) -> None:
    stand_in.answers = [(503, {}), (500, {})]
    async with client_for(stand_in.url) as client:
        answer = await client.request("GET", "/api/v1/nodes")
    assert answer["kind"] == "NodeList"
    assert len(stand_in.seen) == 3


async def test_throttling_honours_retry_after(stand_in: StandIn) -> None:
    stand_in.answers = [(429, {"Retry-After": "1"})]
    async with client_for(stand_in.url) as client:
        await client.request("GET", "/api/v1/nodes")
    assert len(stand_in.seen) == 2
    assert stand_in.seen[1] - stand_in.seen[0] >= 0.95


async def test_retries_stop_after_the_budget(stand_in: StandIn) -> None:
    stand_in.answers = [(503, {})] * 10
    async with client_for(stand_in.url) as client:
        with pytest.raises(ApiError) as raised:
            await client.request("GET", "/api/v1/nodes")
    assert raised.value.status == 503 and raised.value.reason == "ServiceUnavailable"
    assert len(stand_in.seen) == 1 + FAST.max_retries


async def test_every_attempt_reaches_the_request_metrics_as_client_go_counts_them(
    admin_kubeconfig: Path, stand_in: StandIn
) -> None:
    """rest_client_requests_total and its histograms, as the Go CCM serves them: one
    per attempt (a retried 503 too), the status code or <error>, watches as GET, and
    a sibling client (leader election's, the events') reports to the same metrics."""
    from urllib.parse import urlsplit

    from adapters.observability.metrics import PrometheusMetrics

    metrics = PrometheusMetrics(process_metrics=False)
    async with await connect(str(admin_kubeconfig), observer=metrics) as client:
        host = urlsplit(client.server).netloc
        await client.request("GET", "/api/v1/nodes")
        with pytest.raises(ApiError):
            await client.request("GET", "/api/v1/nodes/does-not-exist")
        stream = await client.watch(
            "/api/v1/nodes", query=(("watch", "1"),), request_timeout=(5.0, 5.0)
        )
        await stream.aclose()
        async with client.sibling("leader-election") as sibling:
            await sibling.request("GET", "/api/v1/namespaces/default")
    stand_in.answers = [(503, {})]
    async with client_for(stand_in.url) as flaky:
        flaky.observer = metrics
        await flaky.request("GET", "/api/v1/nodes")
    body = metrics.render()[0].decode()
    for line in (
        f'rest_client_requests_total{{code="200",host="{host}",method="GET"}} 3.0',
        f'rest_client_requests_total{{code="404",host="{host}",method="GET"}} 1.0',
        f'rest_client_request_duration_seconds_count{{host="{host}",verb="GET"}} 4.0',
        f'rest_client_rate_limiter_duration_seconds_count{{host="{host}",verb="GET"}} 4.0',
    ):
        assert line in body, line
    stand_in_host = urlsplit(stand_in.url).netloc
    assert f'code="503",host="{stand_in_host}",method="GET"}} 1.0' in body
    assert f'code="200",host="{stand_in_host}",method="GET"}} 1.0' in body


async def test_client_errors_are_not_retried(admin_kubeconfig: Path) -> None:
    async with await connect(str(admin_kubeconfig)) as client:
        with pytest.raises(ApiError) as raised:
            await client.request("GET", "/api/v1/nodes/does-not-exist")
    assert raised.value.not_found
    assert client.requests["GET"] == 1


async def test_an_unreachable_server_fails_fast() -> None:
    from adapters.observability.metrics import PrometheusMetrics

    metrics = PrometheusMetrics(process_metrics=False)
    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        client.observer = metrics
        started = time.monotonic()
        with pytest.raises(ApiUnavailableError):
            await client.request("GET", "/version")
    assert time.monotonic() - started < 5
    assert 'rest_client_requests_total{code="<error>"' in metrics.render()[0].decode()


async def test_bearer_tokens_never_reach_the_logs(stand_in: StandIn) -> None:
    token = "s3cr3t-b34r3r-t0k3n"
    stand_in.answers = [(503, {})] * 10
    lines: list[str] = []
    sink: Callable[[object], None] = lambda message: lines.append(str(message))  # noqa: E731
    handler = logger.add(sink, level="DEBUG")
    try:
        async with client_for(stand_in.url, token=token) as client:
            with pytest.raises(ApiError) as raised:
                await client.request("GET", "/api/v1/nodes")
    finally:
        logger.remove(handler)
    assert stand_in.authorization[0] == f"Bearer {token}"
    assert lines, "the retries should have been logged"
    assert not any(token in line for line in lines)
    assert token not in str(raised.value)


async def test_a_closed_client_refuses_requests(stand_in: StandIn) -> None:
    client = client_for(stand_in.url)
    await client.aclose()
    with pytest.raises(ApiUnavailableError, match="closed"):
        await client.request("GET", "/version")


async def test_a_token_ending_in_a_newline_is_sent_without_it(stand_in: StandIn) -> None:
    """``echo tok | base64`` leaves a newline after a kubeconfig's token; client-go trims
    token files, so a drop-in must not fail where the Go CCM works."""
    async with client_for(stand_in.url, token="n3wl1n3-b34r3r-t0k3n\n") as client:
        await client.request("GET", "/api/v1/nodes")
    assert stand_in.authorization == ["Bearer n3wl1n3-b34r3r-t0k3n"]


async def test_a_token_with_a_newline_inside_is_refused_without_being_quoted(
    stand_in: StandIn,
) -> None:
    """The HTTP library refuses a header with a control character inside and quotes it.
    Requests, watches and the leader election's retries must say what is wrong in one
    line, without the token."""
    token = "n3wl1n3-b34r3r-t0k3n"
    lines: list[str] = []
    sink: Callable[[object], None] = lambda message: lines.append(str(message))  # noqa: E731
    handler = logger.add(sink, level="TRACE")
    failures: list[str] = []
    try:
        async with client_for(stand_in.url, token=f"{token[:6]}\n{token[6:]}") as client:
            with pytest.raises(ApiUnavailableError) as request_failure:
                await client.request("GET", "/api/v1/nodes")
            failures.append(str(request_failure.value))
            with pytest.raises(ApiUnavailableError) as watch_failure:
                await client.watch(
                    "/api/v1/nodes", query=[("watch", "1")], request_timeout=(1.0, 1.0)
                )
            failures.append(str(watch_failure.value))
            elector = LeaseLeaderElector(
                client, name="newline", renew_deadline=0.5, lease_duration=1.0, retry_period=0.1
            )
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(elector.acquire(), timeout=1.0)
    finally:
        logger.remove(handler)
    assert stand_in.authorization == [], "nothing should have been sent"
    assert any("leader election" in line for line in lines), lines
    for text in failures + lines:
        assert token[:6] not in text and token[6:] not in text, text
    for failure in failures:
        assert "\n" not in failure and "control character" in failure, failure
