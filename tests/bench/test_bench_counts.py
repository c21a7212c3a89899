"""The benchmarks' own code at a tiny size: what they count must hold at any size.

Only counts are asserted (requests per pass, writes per no-op pass), never
timings: CI machines are too noisy for those, ``scripts/bench`` measures them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench.router import router_cost
from tools.bench.scenarios import bench_env, registration, steady_state

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
async def test_a_sync_pass_asks_xo_at_most_three_times_and_a_no_op_pass_writes_nothing(
    control_plane_bin: Path,
) -> None:
    async with bench_env(bin_dir=control_plane_bin) as env:
        rows = await steady_state(env, sizes=[20, 100])
    assert [row["vms"] for row in rows] == [20, 100]
    for row in rows:
        for sync in ("label_sync", "address_sync"):
            for attempt in ("converge", "noop"):
                assert row[f"{sync}_{attempt}"]["xo_requests"] <= 3, (sync, attempt, row)
            assert row[f"{sync}_noop"]["kube_writes"] == 0, (sync, row)
            assert row[f"{sync}_noop"]["kube_requests"] == {}, (sync, row)


@pytest.mark.timeout(120)
async def test_the_registration_benchmark_measures_every_node_it_creates(
    control_plane_bin: Path,
) -> None:
    async with bench_env(bin_dir=control_plane_bin) as env:
        result = await registration(env, nodes=20)
    assert result["taint_removal_delay_seconds"]["count"] == 20
    assert result["ccm_exit_code"] == 0
    assert result["kube_requests_per_node"] > 0, "the audit log must see the CCM's requests"


async def test_the_router_benchmark_routes_every_event_it_times() -> None:
    row = await router_cost(10, events=50)
    assert (row["nodes"], row["events"]) == (10, 50)
    assert 0 < row["p50_ms"] <= row["p99_ms"]
