"""Retries: transient failures retried with backoff under a deadline, nothing else."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from adapters.config import CloudConfig
from adapters.xenorchestra import RetryPolicy, XOInventory
from adapters.xenorchestra.http import retry_after_seconds
from domain.errors import InventoryError, VMNotFoundError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import TOKEN, RecordingObserver, World, make_inventory

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"


@pytest.mark.parametrize(
    ("status", "failures"),
    [
        pytest.param(503, 1, id="one-503"),
        pytest.param(500, 2, id="two-500"),
        pytest.param(502, 3, id="three-502"),
        pytest.param(429, 1, id="one-429"),
    ],
)
async def test_transient_failures_are_retried_until_xo_answers(
    xo: FakeXOServer, world: World, status: int, failures: int
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    xo.faults.set(fail_next=failures, error_status=status)
    observer = RecordingObserver()

    async with make_inventory(xo, observer=observer) as inv:
        vm = await inv.get_vm(vm_id=VM_ID)

    assert vm.id == VM_ID
    assert xo.requests.snapshot() == {"GET /vms/{id}": failures + 1}
    expected_error = "429" if status == 429 else "5xx"
    assert observer.calls == [("GET /vms/{id}", expected_error)] * failures + [
        ("GET /vms/{id}", None)
    ]


async def test_retry_after_is_honoured(xo: FakeXOServer, world: World) -> None:
    xo.faults.set(fail_next=1, error_status=429, retry_after=0.3)

    async with make_inventory(xo) as inv:
        started = time.monotonic()
        await inv.snapshot()
        elapsed = time.monotonic() - started

    assert elapsed >= 0.3
    assert sum(xo.requests.snapshot().values()) == 4  # three lists, one of them twice


async def test_a_retry_after_beyond_the_deadline_gives_up_at_once(
    xo: FakeXOServer, world: World
) -> None:
    xo.faults.set(fail_next=1, error_status=503, retry_after=120, endpoint="GET /vms")

    async with make_inventory(xo) as inv:
        started = time.monotonic()
        with pytest.raises(InventoryError, match="503"):
            await inv.check()

    assert time.monotonic() - started < 1.0
    assert xo.requests.snapshot() == {"GET /vms": 1}


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        pytest.param({"error_rate": 1.0, "error_status": 503}, "503", id="always-503"),
        pytest.param({"hang": True}, "timed out", id="hanging-xo"),
    ],
)
async def test_the_deadline_bounds_a_call_waits_and_timeouts_included(
    xo: FakeXOServer, world: World, faults: dict[str, object], match: str
) -> None:
    xo.faults.set(**faults)
    retry = RetryPolicy(deadline=0.6, initial_backoff=0.05, max_backoff=0.1, jitter=0.1)

    async with make_inventory(xo, retry=retry, client_timeout=0.25) as inv:
        started = time.monotonic()
        with pytest.raises(InventoryError, match=match) as caught:
            await inv.get_vm(vm_id=VM_ID)
        elapsed = time.monotonic() - started
        xo.faults.clear()

    assert 0.2 <= elapsed < 1.2
    assert "attempt(s)" in str(caught.value)
    assert not isinstance(caught.value, VMNotFoundError)


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        pytest.param(404, None, id="404-not-found-is-none"),
        pytest.param(400, InventoryError, id="400"),
        pytest.param(409, InventoryError, id="409"),
        pytest.param(422, InventoryError, id="422"),
    ],
)
async def test_other_client_errors_are_not_retried(
    xo: FakeXOServer, world: World, status: int, exception: type[Exception] | None
) -> None:
    if status != 404:
        xo.faults.set(fail_next=1, error_status=status)

    async with make_inventory(xo) as inv:
        if exception is None:
            assert await inv.get_vm(vm_id=VM_ID) is None
        else:
            with pytest.raises(exception):
                await inv.get_vm(vm_id=VM_ID)

    assert xo.requests.snapshot() == {"GET /vms/{id}": 1}


async def test_a_dead_server_is_retried_then_reported_as_unreachable(xo: FakeXOServer) -> None:
    url = xo.url
    await xo.stop()
    retry = RetryPolicy(deadline=0.3, initial_backoff=0.02, max_backoff=0.05)
    observer = RecordingObserver()

    async with make_inventory(xo, url=url, retry=retry, observer=observer) as inv:
        with pytest.raises(InventoryError, match="ConnectError"):
            await inv.check()

    assert len(observer.calls) >= 2
    assert {error for _, error in observer.calls} == {"connection"}


async def test_a_failing_observer_never_fails_a_request(xo: FakeXOServer, world: World) -> None:
    class Broken:
        def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
            raise RuntimeError("metrics backend down")

    async with make_inventory(xo, observer=Broken()) as inv:
        snap = await inv.snapshot()

    assert set(snap.pools) == {world.pool_a, world.pool_b}


async def test_concurrent_requests_are_bounded_by_max_concurrent_requests(
    xo: FakeXOServer, world: World
) -> None:
    xo.faults.set(latency=0.1)
    config = CloudConfig(url=xo.url, token=SecretStr(TOKEN), maxConcurrentRequests=2)
    unknown_pools = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(4)]

    async with XOInventory.from_config(config) as inv:
        started = time.monotonic()
        await asyncio.gather(*(inv.get_pool(pool_id=p) for p in unknown_pools))
        elapsed = time.monotonic() - started

    assert elapsed >= 0.2  # 4 requests, 2 at a time, 0.1 s each


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("3", 3.0, id="seconds"),
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param("-2", 0.0, id="negative-clamped"),
        pytest.param("Wed, 01 Jan 2026 00:00:10 GMT", 10.0, id="http-date"),
        pytest.param("soon", None, id="garbage"),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(
    header: str | None, expected: float | None
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    assert retry_after_seconds(header, now=now) == expected
