"""The console script against the real API server and the fake XO: starts, leads, stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.kubernetes import KubeClient
from adapters.testing.fake_xo import FakeXOServer, FakeXOState

from .ccm_process import CCMProcess, write_cloud_config
from .kube import create_node, delete_node, get_node, unique
from .waiting import until

pytestmark = pytest.mark.integration


async def test_ccm_initializes_a_node_and_stops_cleanly(
    kube: KubeClient, admin_kubeconfig: Path, ccm_processes: list[CCMProcess]
) -> None:
    async with FakeXOServer(state=FakeXOState.from_samples()) as xo:
        vm = next(iter(xo.state.objects["VM"].values()))
        config = write_cloud_config(xo.url)
        ccm = await CCMProcess(kubeconfig=admin_kubeconfig, cloud_config=config).start()
        ccm_processes.append(ccm)
        await ccm.wait_ready()
        name = unique("smoke")
        await create_node(kube, name, system_uuid=vm["id"])
        try:

            async def initialized() -> bool:
                node = await get_node(kube, name)
                return node["spec"].get("providerID", "").endswith(vm["id"])

            await until(initialized, within=15)
            assert 'workqueue_adds_total{name="cloud-node"}' in await ccm.metrics()
        finally:
            await delete_node(kube, name)
        assert await ccm.stop() == 0
        config.unlink()
