"""Slow and idle clients against the secure port of a CCM process that has few
descriptors: the probes keep answering, the controllers keep working, the log stays
small and the memory comes back (issue 30, item 1).

The review's reproduction: with 256 descriptors, 300 idle TLS connections made the
port stop answering, and asyncio logged ``socket.accept() out of system resource``
hundreds of thousands of times. Here 300 idle and 100 trickling TLS connections are
held (reopened as the server closes them) for 45 s while a kubelet-like probe asks
``/healthz`` every half second with a 1 s timeout and a Node joins.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from adapters.kubernetes import KubeClient
from entrypoints.testkits.fake_xo import FakeXOServer, FakeXOState

from .ccm_process import CCMProcess, write_cloud_config
from .flood import Flood, Prober, ProcessFigures, limit_descriptors, raise_own_descriptor_limit
from .kube import create_node, delete_node, get_node, unique
from .waiting import until

pytestmark = pytest.mark.integration

DESCRIPTORS = 256
IDLE, TRICKLING = 300, 100
FLOOD_SECONDS = 45.0


@pytest.mark.timeout(240)
async def test_a_flood_of_slow_clients_leaves_probes_and_controllers_working(
    kube: KubeClient, admin_kubeconfig: Path, ccm_processes: list[CCMProcess]
) -> None:
    raise_own_descriptor_limit(4 * (IDLE + TRICKLING))
    async with FakeXOServer(state=FakeXOState.from_samples()) as xo:
        vm = next(iter(xo.state.objects["VM"].values()))
        config = write_cloud_config(xo.url)
        ccm = CCMProcess(
            kubeconfig=admin_kubeconfig,
            cloud_config=config,
            preexec_fn=limit_descriptors(DESCRIPTORS),
        )
        ccm_processes.append(await ccm.start())
        await ccm.wait_ready()
        await asyncio.sleep(3)  # past the start-up allocations
        before = ProcessFigures.of(ccm.pid)
        log_before = ccm.log_path.stat().st_size

        prober = Prober("127.0.0.1", ccm.port)
        flood = Flood("127.0.0.1", ccm.port, idle=IDLE, trickling=TRICKLING)
        prober.start()
        flood.start()
        name = unique("flooded")
        peak = before
        initialized_after: float | None = None
        started = time.monotonic()
        try:
            await asyncio.sleep(5)
            await create_node(kube, name, system_uuid=vm["id"])
            joined = time.monotonic()
            while time.monotonic() - started < FLOOD_SECONDS:
                now = ProcessFigures.of(ccm.pid)
                peak = ProcessFigures(
                    max(peak.descriptors, now.descriptors), max(peak.rss_mib, now.rss_mib)
                )
                if initialized_after is None:
                    node = await get_node(kube, name)
                    if node["spec"].get("providerID", "").endswith(vm["id"]):
                        initialized_after = time.monotonic() - joined
                await asyncio.sleep(0.5)
        finally:
            await flood.stop()
        try:
            # The flood is over: the port serves at once, and the memory comes back.
            await until(prober.probe, within=5, every=0.2)
            await asyncio.sleep(10)
            after = ProcessFigures.of(ccm.pid)
        finally:
            await prober.stop()
            await delete_node(kube, name)
        log_growth = ccm.log_path.stat().st_size - log_before
        figures = (
            f"flood figures: descriptors {before.descriptors} -> peak {peak.descriptors} -> "
            f"{after.descriptors} (limit {DESCRIPTORS}); /healthz {prober.answered}/"
            f"{prober.sent} answered within 1 s; log +{log_growth / 1024:.1f} KiB; RSS "
            f"{before.rss_mib:.1f} -> peak {peak.rss_mib:.1f} -> {after.rss_mib:.1f} MiB; "
            f"flood opened {flood.opened} connections (peak {flood.peak_open} open at once), "
            f"{flood.closed_by_server} closed by the server, {flood.failed_to_open} failed "
            f"to open; node initialized after "
            f"{'never' if initialized_after is None else f'{initialized_after:.1f} s'}"
        )
        print(figures)
        assert ccm.returncode is None, ccm.log[-3000:]
        assert prober.answered == prober.sent, (figures, prober.failures[:10])
        assert initialized_after is not None, figures
        assert log_growth < 64 * 1024, (figures, ccm.log[-2000:])
        assert after.descriptors <= before.descriptors + 8, figures
        assert after.rss_mib <= before.rss_mib + 16, figures
        # The server did close slow clients (timeouts and the connection cap).
        assert flood.closed_by_server > 0, figures
        assert "socket.accept() out of system resource" not in ccm.log
        assert await ccm.stop() == 0
        config.unlink()
