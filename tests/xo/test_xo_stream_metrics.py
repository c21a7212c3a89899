"""The change stream's state and XO's last answer, as /metrics shows them.

The real HTTP adapter against the fake XO, measured by the real Prometheus
adapter: the series the event-stream and XO-unreachable alerts read.
"""

from __future__ import annotations

import time

import pytest

from adapters.observability import PrometheusMetrics
from adapters.xenorchestra import RetryPolicy
from domain.errors import InventoryError
from domain.model import ChangeKind
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.integration.waiting import until
from tests.xo.support import TOKEN, World, collecting, make_inventory


def stream_state(metrics: PrometheusMetrics) -> dict[str, float | None]:
    return {
        state: metrics.registry.get_sample_value(
            "xenorchestra_event_stream_state", {"state": state}
        )
        for state in ("connected", "polling", "down", "stopped")
    }


def supported(metrics: PrometheusMetrics) -> float | None:
    return metrics.registry.get_sample_value("xenorchestra_events_supported")


def one_hot(state: str) -> dict[str, float]:
    return {s: 1.0 if s == state else 0.0 for s in ("connected", "polling", "down", "stopped")}


async def test_the_stream_reports_connected_down_and_stopped(
    xo: FakeXOServer, world: World
) -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    assert stream_state(metrics) == one_hot("stopped")
    assert supported(metrics) == 0

    async with make_inventory(xo, observer=metrics) as inv:
        async with collecting(inv.changes()) as changes:
            assert (await changes.next()).kind is ChangeKind.RESYNC
            assert stream_state(metrics) == one_hot("connected")
            assert supported(metrics) == 1

            xo.auth.revoke_token(TOKEN)
            xo.hub.drop_all()
            await until(lambda: stream_state(metrics) == one_hot("down"), within=5)
            assert supported(metrics) == 1  # XO still serves events: down is worth an alert

            xo.auth.add_token(token=TOKEN)
            assert (await changes.next()).kind is ChangeKind.RESYNC
            assert stream_state(metrics) == one_hot("connected")
        assert stream_state(metrics) == one_hot("stopped")


async def test_an_xo_without_events_reports_polling_and_unsupported(
    xo: FakeXOServer, world: World
) -> None:
    xo.faults.set(events_enabled=False)
    metrics = PrometheusMetrics(process_metrics=False)

    async with (
        make_inventory(xo, observer=metrics) as inv,
        collecting(inv.changes()) as changes,
    ):
        assert (await changes.next()).kind is ChangeKind.RESYNC
        assert stream_state(metrics) == one_hot("polling")
        assert supported(metrics) == 0


async def test_only_an_answer_from_xo_moves_the_last_success_time(
    xo: FakeXOServer, world: World
) -> None:
    started = time.time()
    metrics = PrometheusMetrics(process_metrics=False)

    def last() -> float:
        value = metrics.registry.get_sample_value(
            "xenorchestra_last_successful_request_timestamp_seconds"
        )
        assert value is not None
        return value

    at_start = last()
    assert started <= at_start <= time.time()  # the start time until XO first answers
    quick = RetryPolicy(deadline=0.2, initial_backoff=0.01, max_backoff=0.02, jitter=0.1)
    async with make_inventory(xo, observer=metrics, retry=quick) as inv:
        xo.faults.set(fail_next=1000)
        with pytest.raises(InventoryError, match="503"):
            await inv.snapshot()
        assert last() == at_start  # 503s are not answers
        xo.faults.clear()
        await inv.get_host(host_id="00000000-0000-4000-8000-000000000000")  # 404: XO answered
        assert last() > at_start
