"""The console script against the real API server and the fake XO: starts, leads, stops."""

from __future__ import annotations

import pytest

from adapters.kubernetes import KubeClient
from adapters.testing.fake_xo import FakeXOServer, FakeXOState

from .conftest import StartCCM
from .kube import create_node, delete_node, get_node, unique
from .waiting import until

pytestmark = pytest.mark.integration


async def test_ccm_initializes_a_node_and_stops_cleanly(
    kube: KubeClient, start_ccm: StartCCM
) -> None:
    async with FakeXOServer(state=FakeXOState.from_samples()) as xo:
        vm = next(iter(xo.state.objects["VM"].values()))
        ccm = await start_ccm(xo.url)
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
