"""The console script against the real API server and the fake XO: starts, leads, stops,
and loads nothing of the kits on the way."""

from __future__ import annotations

import pytest

from adapters.kubernetes import KubeClient
from entrypoints.testkits.fake_xo import FakeXOServer, FakeXOState

from .conftest import StartCCM
from .kube import create_node, delete_node, get_node, unique
from .waiting import until

pytestmark = pytest.mark.integration


async def test_ccm_initializes_a_node_and_stops_cleanly(
    kube: KubeClient, start_ccm: StartCCM
) -> None:
    async with FakeXOServer(state=FakeXOState.from_samples()) as xo:
        vm = next(iter(xo.state.objects["VM"].values()))
        # Python reports every module it imports ("import time: ... | name"), for the
        # whole life of the process: the static contract's claim, seen at run time.
        ccm = await start_ccm(xo.url, env={"PYTHONPROFILEIMPORTTIME": "1"})
        name = unique("smoke")
        await create_node(kube, name, system_uuid=vm["id"])
        try:

            async def initialized() -> bool:
                node = await get_node(kube, name)
                return node["spec"].get("providerID", "").endswith(vm["id"])

            await until(initialized, within=15)
            assert 'workqueue_adds_total{name="Nodes"}' in await ccm.metrics()
        finally:
            await delete_node(kube, name)
        assert await ccm.stop() == 0
    loaded = imported_modules(ccm.log)
    assert {"entrypoints.app", "adapters.xenorchestra", "application.controllers"} <= loaded
    assert [m for m in loaded if m.startswith(KITS)] == []


#: What the controller process never loads (the import-linter contract that says so
#: names the same two).
KITS = ("adapters.memory", "entrypoints.testkits")


def imported_modules(log: str) -> set[str]:
    """The modules named by ``-X importtime`` lines in a process's output."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in log.splitlines()
        if line.startswith("import time:") and "|" in line
    }
