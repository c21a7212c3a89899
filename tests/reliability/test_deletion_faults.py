"""The deletion guards across process restarts and in dry run (issue 13 cases 4, 5).

Four NotReady Nodes whose VMs are deleted in XO: every deletion is justified,
so what is checked is how many happen. A restart storm (processes killed or
stopped in a row, as an OOM, a drain or a lease loss would) must not reset
the breaker's count, which lives in the Lease ``<lease>-deletion-breaker``;
``doctor --reset-deletion-breaker`` is the operator's way to re-arm it. A dry
run deletes nothing, reports every node at every pass, and never trips the
breaker by reporting.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from adapters.kubernetes import KubeClient
from tests.integration.ccm_process import CCMProcess, console_script
from tests.integration.e2e_support import node_events
from tests.integration.waiting import until
from tools.bench.scenarios import metric

from .world import RESULTS, World

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

GONE = ("a-down-0", "a-halted-0", "b-down-0", "b-halted-0")
CAP = 1
#: At most one deletion per window (10 min): the rest must wait for an operator.
STORM_CONFIG = f"deletionRateMinimum: {CAP}\ndeletionRatePercent: 0\n"


def lifecycle(text: str, result: str) -> float:
    return metric(
        text, "xenorchestra_ccm_node_syncs_total", controller="cloud-node-lifecycle", result=result
    )


def deleted(world: World) -> list[str]:
    names = [world.member(role).name for role in GONE]
    return [name for name in names if name not in world.watch.nodes]


async def delete_breaker_lease(kube: KubeClient, run: str) -> None:
    with contextlib.suppress(Exception):
        await kube.request(
            "DELETE",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{run}-deletion-breaker",
        )


async def reset_breaker(world: World) -> str:
    """``doctor --reset-deletion-breaker`` as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        console_script(),
        "doctor",
        "--reset-deletion-breaker",
        f"--kubeconfig={world.kubeconfig}",
        f"--leader-elect-resource-name={world.run}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_restart_storm_keeps_the_breakers_count_until_an_operator_resets_it(
    world: World,
) -> None:
    ccm = await world.start_ccm(extra_config=STORM_CONFIG)
    try:
        await world.wait_converged(within=30)
        for role in GONE:
            world.delete_vm(role)
        for restart in range(4):
            if restart:
                ccm = await world.start_ccm(extra_config=STORM_CONFIG)

            async def had_its_say(ccm: CCMProcess = ccm) -> bool:
                refused = lifecycle(await ccm.metrics(), "deletion-rate-limited")
                return refused >= 1 or len(deleted(world)) == len(GONE)

            await until(had_its_say, within=30, every=0.2)
            world.killed.append(ccm)
            await (ccm.kill() if restart % 2 == 0 else ccm.stop())
        storm = deleted(world)
        assert len(storm) == CAP, f"cap {CAP} per window, {len(storm)} deleted over 4 processes"

        report = await reset_breaker(world)
        await world.start_ccm(extra_config=STORM_CONFIG)
        await world.watch.wait_for(lambda: len(deleted(world)) == 2 * CAP, within=30)
        await asyncio.sleep(3.0)  # more passes: the re-armed breaker trips again at the cap
        assert len(deleted(world)) == 2 * CAP
        world.assert_healthy()
    finally:
        await delete_breaker_lease(world.kube, world.run)
    RESULTS["restart storm"] = {
        "summary": f"{len(storm)} of {len(GONE)} deleted over 4 processes (cap {CAP} per "
        f"window); {2 * CAP} after doctor's reset ({report.strip().splitlines()[0]})"
    }


@pytest.mark.timeout(90)
async def test_a_dry_run_reports_every_node_it_would_delete_and_deletes_none(
    world: World,
) -> None:
    ccm = await world.start_ccm("--dry-run-deletions")
    try:
        await world.wait_converged(within=30)
        for role in GONE:
            world.delete_vm(role)
        # Eight passes' worth of reports: past the breaker's 5 per window, had each
        # report taken a slot (it did on 87c6494: the breaker tripped, the dry run
        # then said "rate limited" instead of naming the nodes).
        wanted = 8 * len(GONE)

        async def reported() -> bool:
            return lifecycle(await ccm.metrics(), "dry-run-delete") >= wanted

        await until(reported, within=40, every=0.5)
        text = await ccm.metrics()
        assert lifecycle(text, "deletion-rate-limited") == 0
        assert metric(text, "xenorchestra_ccm_deletion_breaker_tripped") == 0
        assert not deleted(world)
        for role in GONE:
            name = world.member(role).name
            assert await node_events(world.kube, name, reason="DeletingNodeDryRun"), name
            assert not await node_events(world.kube, name, reason="DeletingNode"), name
        world.assert_healthy()
    finally:
        await delete_breaker_lease(world.kube, world.run)
    RESULTS["dry run"] = {
        "summary": f"{lifecycle(text, 'dry-run-delete'):.0f} reports for {len(GONE)} nodes, "
        "none deleted, the breaker never tripped"
    }
