"""The soak's last phase: issue 13's cases that replace the CCM process.

Run once the epochs (and the RSS measurement, which needs one process) are
over, on the same world and with the invariant tracker still watching:

- **non-JSON 200 on the Lease** (case 2): the soak's CCM hands over (SIGTERM,
  the Lease released) to one that talks to the API server through an HTTP
  proxy, with a standby beside it; the proxy then answers the leader's Lease
  requests with a 200 that is not JSON. The leader must exit, the standby
  take over, and the two gauges never both say "leading".

Each case leaves a leader running and the world converged for the next.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters.testing.local_cluster.control_plane import write_kubeconfig
from tests.bench.plane import ManagedControlPlane
from tests.integration.ccm_process import CCMProcess
from tests.integration.proxy import HttpProxy
from tests.integration.waiting import until

from .world import LeaderOverlap, World, leading, lease_not_json

CONVERGE_BOUND = 45.0
#: The CCMs of this phase use the fast leader timings (lease 4 s, renew deadline 3 s).
EXIT_BOUND = 3.0 + 5.0
TAKEOVER_BOUND = 4.0 + 2 * 0.5 * 1.2 + 5.0

Act = Callable[[], Awaitable[None]]


async def hand_over(
    world: World, old: CCMProcess, new_flags: tuple[str, ...], **kw: Any
) -> CCMProcess:
    """Stop ``old`` (SIGTERM: it releases the Lease) and start a leader in its place."""
    world.killed.append(old)
    await old.stop()
    ccm = await world.start_ccm(*new_flags, ready_within=60, **kw)
    await until(lambda: leading(ccm), within=30)
    return ccm


async def lease_not_json_case(
    world: World,
    plane: ManagedControlPlane,
    current: CCMProcess,
    *,
    flags: tuple[str, ...],
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
        leader = await hand_over(world, current, flags, kubeconfig=via_proxy)
        standby = await world.start_ccm(*flags, ready_within=60)
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
