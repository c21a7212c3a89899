"""Who spends which request budget: the events' own flags, the workers that follow
``--kube-api-qps``, and the events' own client."""

from __future__ import annotations

import pytest

from adapters.kubernetes import KubeClient
from adapters.kubernetes.configuration import ApiConfig
from entrypoints import adapter_builders as build
from entrypoints.flags.settings import (
    FlagError,
    Settings,
    parse_command_line,
    requests_in_flight,
    workers_for_qps,
)


def test_event_flags_default_to_kubelets_pair() -> None:
    s = parse_command_line([])
    assert (s.event_qps, s.event_burst) == (50, 100)
    s = parse_command_line(["--event-qps=5", "--event-burst", "10"])
    assert (s.event_qps, s.event_burst) == (5, 10)
    assert parse_command_line(["--event-qps=0", "--event-burst=0"]).event_qps == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--event-qps=-1"], "--event-qps=-1: must not be negative"),
        (["--event-burst=-3"], "--event-burst=-3: must be at least 1"),
        (["--event-qps=10", "--event-burst=0"], "--event-burst=0: must be at least 1"),
        (["--event-qps=ten"], 'invalid argument "ten" for "--event-qps"'),
    ],
)
def test_bad_event_budgets_are_refused_in_one_line(argv: list[str], fragment: str) -> None:
    with pytest.raises(FlagError) as err:
        parse_command_line(argv)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("qps", "workers"),
    [(0.5, 1), (1, 1), (20, 1), (39.9, 1), (40, 2), (100, 5), (500, 25), (640, 32), (5000, 32)],
)
def test_workers_follow_the_qps_by_the_documented_formula(qps: float, workers: int) -> None:
    assert workers_for_qps(qps) == workers


def test_workers_are_sized_from_qps_only_when_not_given() -> None:
    assert parse_command_line([]).concurrent_node_syncs == 1  # Go's default at 20 QPS
    assert parse_command_line(["--kube-api-qps=500"]).concurrent_node_syncs == 25
    given = parse_command_line(["--kube-api-qps=500", "--concurrent-node-syncs=1"])
    assert given.concurrent_node_syncs == 1  # given: Go's meaning
    assert parse_command_line(["--concurrent-node-syncs=10"]).concurrent_node_syncs == 10
    # the address-sync workers follow them, as in Go
    assert parse_command_line(["--kube-api-qps=100"]).status_update_workers == 5


@pytest.mark.parametrize(
    ("node_syncs", "status_updates", "threads"),
    [(1, 1, 4), (1, 5, 8), (10, 10, 22), (25, 25, 52), (32, 32, 64), (32, 100, 64)],
)
def test_the_client_has_a_thread_per_request_the_workers_may_have_in_flight(
    node_syncs: int, status_updates: int, threads: int
) -> None:
    assert requests_in_flight(node_syncs, status_updates) == threads


def test_the_client_threads_follow_the_worker_flags() -> None:
    def threads(*argv: str) -> int:
        settings = parse_command_line(list(argv))
        return build.kube_client_settings(settings=settings).workers

    assert threads() == 4  # the defaults: as before
    assert threads("--concurrent-node-syncs=10") == 22
    assert threads("--concurrent-node-syncs=10", "--concurrent-node-status-updates=2") == 14
    assert threads("--kube-api-qps=500") == 52  # 25 workers sized from the QPS


def test_the_client_budget_comes_from_the_qps_and_burst_flags_alone() -> None:
    def budget(*argv: str) -> tuple[float, int]:
        client = build.kube_client_settings(settings=parse_command_line(list(argv)))
        return client.qps, client.burst

    assert budget() == (20, 30)  # Go's defaults, written in the flag table
    assert budget("--kube-api-qps=7", "--kube-api-burst=9") == (7, 9)
    assert (Settings().kube_api_qps, Settings().kube_api_burst) == (20, 30)


async def test_events_get_a_client_with_their_own_budget() -> None:
    settings = Settings(event_qps=7, event_burst=9)
    main = KubeClient(
        ApiConfig(host="http://127.0.0.1:1"),
        build.kube_client_settings(settings=settings),
        name="kube",
    )
    builder = build.event_client(client=main, settings=settings)
    events = await anext(builder)
    try:
        assert events is not main and events.limiter is not main.limiter
        assert (events.limiter.qps, events.limiter.burst) == (7, 9)
        assert (main.limiter.qps, main.limiter.burst) == (20, 30)
    finally:
        await builder.aclose()
        await main.aclose()
