"""The soak's last phase: issue 13's cases that replace the CCM process.

Run once the epochs (and the RSS measurement, which needs one process) are
over, on the same world and with the invariant tracker still watching:

- **non-JSON 200 on the Lease** (case 2): the soak's CCM hands over (SIGTERM,
  the Lease released) to one that talks to the API server through an HTTP
  proxy, with a standby beside it; the proxy then answers the leader's Lease
  requests with a 200 that is not JSON. The leader must exit, the standby
  take over, and the two gauges never both say "leading";
- **restart storm** (case 4): four processes in a row, two of them killed,
  under a cap of one deletion per window, with four nodes' VMs deleted: one
  node deleted over the four (the count lives in the breaker's Lease);
  ``doctor --reset-deletion-breaker`` re-arms it first and after;
- **dry run** (case 5): a dry-run leader over the nodes still pending reports
  each at every pass, deletes none, never trips the breaker; a normal leader
  then deletes them.

Each case leaves a leader running and the world converged for the next.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from entrypoints.testkits.local_cluster.control_plane import write_kubeconfig
from tests.integration.ccm_process import CCMProcess, console_script
from tests.integration.proxy import HttpProxy
from tests.integration.waiting import until
from tests.reliability.world import LeaderOverlap, World, leading, lease_not_json
from tools.bench.plane import ManagedControlPlane
from tools.bench.scenarios import metric

CONVERGE_BOUND = 45.0
#: The CCMs of this phase: handovers in seconds, and a renew deadline a loaded
#: 2-core machine still meets with hundreds of nodes.
LEADER_FLAGS = (
    "--leader-elect-lease-duration=8s",
    "--leader-elect-renew-deadline=6s",
    "--leader-elect-retry-period=1s",
)
EXIT_BOUND = 6.0 + 5.0
TAKEOVER_BOUND = 8.0 + 2 * 1.0 * 1.2 + 5.0

Act = Callable[[], Awaitable[None]]


async def hand_over(
    world: World, old: CCMProcess, new_flags: tuple[str, ...], **kw: Any
) -> CCMProcess:
    """Stop ``old`` (SIGTERM: it releases the Lease) and start a leader in its place."""
    world.killed.append(old)
    await old.stop()
    ccm = await world.start_ccm(*new_flags, *LEADER_FLAGS, ready_within=60, **kw)
    await until(lambda: leading(ccm), within=30)
    return ccm


async def lease_not_json_case(
    world: World,
    plane: ManagedControlPlane,
    current: CCMProcess,
    *,
    flags: tuple[str, ...],
    config: str,
    act: Act,
    violations: list[str],
) -> tuple[CCMProcess, dict[str, Any]]:
    """Case 2; returns the CCM leading afterwards and the figures."""
    assert plane.admin_cert is not None
    proxy = HttpProxy(plane.server, ca_file=plane.ca_file, client=plane.admin_cert)
    await proxy.start()
    overlap: LeaderOverlap | None = None
    try:
        via_proxy = write_kubeconfig(
            Path(tempfile.mkdtemp(prefix="xoccm-soak-")) / "proxied.kubeconfig",
            server=proxy.url,
            ca_file=plane.ca_file,
            user="proxied",
        )
        leader = await hand_over(world, current, flags, kubeconfig=via_proxy, extra_config=config)
        standby = await world.start_ccm(*flags, *LEADER_FLAGS, extra_config=config, ready_within=60)
        await world.wait_converged(within=CONVERGE_BOUND)
        overlap = LeaderOverlap(leader, standby)
        world.killed.append(leader)  # it must exit
        proxy.rules.append(lease_not_json(world.run))
        broken = time.monotonic()
        for _ in range(5):
            await act()
        try:
            code = await leader.wait(within=EXIT_BOUND)
        except TimeoutError:
            code = None
            violations.append(f"Lease answered non-JSON: the leader still runs after {EXIT_BOUND}s")
        exited = time.monotonic() - broken
        await until(lambda: leading(standby), within=TAKEOVER_BOUND)
        takeover = time.monotonic() - broken
        converged = await world.wait_converged(within=CONVERGE_BOUND)
        await overlap.stop()
        if overlap.overlaps:
            violations.append(
                f"Lease answered non-JSON: two leaders in {overlap.overlaps} of "
                f"{overlap.samples} samples"
            )
        return standby, {
            "leader_exit_code": code,
            "leader_exit_seconds": round(exited, 1),
            "takeover_seconds": round(takeover, 1),
            "converged_seconds": round(converged, 1),
            "leader_overlap_samples": overlap.overlaps,
            "samples": overlap.samples,
        }
    finally:
        if overlap is not None:
            await overlap.stop()
        await proxy.stop()


CAP = 1
STORM_CONFIG = f"deletionRateMinimum: {CAP}\ndeletionRatePercent: 0\n"
STORM_VMS = 4


def lifecycle(text: str, result: str) -> float:
    return metric(
        text, "xenorchestra_ccm_node_syncs_total", controller="cloud-node-lifecycle", result=result
    )


async def reset_breaker(world: World) -> str:
    """``doctor --reset-deletion-breaker`` as an operator runs it (exit 0 required)."""
    proc = await asyncio.create_subprocess_exec(
        console_script(),
        "doctor",
        "--reset-deletion-breaker",
        f"--kubeconfig={world.kubeconfig}",
        f"--leader-elect-resource-name={world.run}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RuntimeError(f"doctor --reset-deletion-breaker exited {proc.returncode}: {text}")
    return text.splitlines()[0] if text else ""


async def breaker_cases(
    world: World,
    current: CCMProcess,
    *,
    flags: tuple[str, ...],
    config: str,
    ready_roles: list[str],
    violations: list[str],
) -> tuple[CCMProcess, dict[str, Any]]:
    """Cases 4 and 5: a restart storm under a cap of one deletion per window, then a
    dry run over the nodes still pending; then a normal leader deletes them."""
    victims = ready_roles[:STORM_VMS]
    names = [world.member(r).name for r in victims]

    def gone() -> list[str]:
        return [n for n in names if n not in world.watch.nodes]

    first_reset = await reset_breaker(world)  # the soak's own deletions filled the window
    for role in victims:
        await world.set_ready(role, False)
        world.delete_vm(role)
    ccm = current
    for restart in range(4):
        ccm = await hand_over(world, ccm, flags, extra_config=STORM_CONFIG)

        async def had_its_say(ccm: CCMProcess = ccm) -> bool:
            refused = lifecycle(await ccm.metrics(), "deletion-rate-limited")
            return refused >= 1 or len(gone()) == len(names)

        await until(had_its_say, within=CONVERGE_BOUND, every=0.5)
        if restart % 2 == 0:  # a crash (SIGKILL, the Lease held until it expires)
            world.killed.append(ccm)
            await ccm.kill()
    storm = len(gone())
    if storm != CAP:
        violations.append(f"restart storm: {storm} deleted over 4 processes, cap {CAP}")
    second_reset = await reset_breaker(world)
    ccm = await hand_over(world, ccm, (*flags, "--dry-run-deletions"), extra_config=config)

    async def reported(ccm: CCMProcess = ccm) -> bool:
        return lifecycle(await ccm.metrics(), "dry-run-delete") >= 3 * (len(names) - storm)

    await until(reported, within=CONVERGE_BOUND, every=0.5)
    text = await ccm.metrics()
    if len(gone()) != storm:
        violations.append(f"dry run: {len(gone()) - storm} nodes deleted")
    if metric(text, "xenorchestra_ccm_deletion_breaker_tripped"):
        violations.append("dry run: the breaker tripped")
    ccm = await hand_over(world, ccm, flags, extra_config=config)
    converged = await world.wait_converged(within=CONVERGE_BOUND)
    return ccm, {
        "resets": [first_reset, second_reset],
        "storm_deleted": storm,
        "storm_cap": CAP,
        "dry_run_reports": lifecycle(text, "dry-run-delete"),
        "converged_after_seconds": round(converged, 1),
    }
