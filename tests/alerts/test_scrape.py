"""Every series an alert or a dashboard panel reads is on a live CCM's /metrics.

The CCM runs through its console script against the real kube-apiserver and the
fake XO over HTTP, initializes a node and looks one VM up in vain (XO answers
404), then its /metrics is scraped. Each selector of each rule, panel query and
dashboard variable must find series there, with the label values it matches
and the labels it groups or matches on (``job`` and ``instance`` excepted:
Prometheus adds them). Labelled series that only appear after an event are
created at 0 by the CCM, so the test sees what a fresh Prometheus would.
"""

from __future__ import annotations

import pytest

from adapters.kubernetes import KubeClient
from entrypoints.testkits.fake_xo import FakeXOControlClient, FakeXOServer
from tests.integration.ccm_process import CCMProcess
from tests.integration.conftest import StartCCM
from tests.integration.e2e_support import (
    Nodes,
    World,
    metric,
    wait_initialized,
)
from tests.integration.waiting import until

from .monitoring import (
    alerts,
    exposed,
    missing,
    panel_queries,
    selectors,
    variable_queries,
)

pytestmark = pytest.mark.integration

NO_SUCH_VM = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"


def ccm_flags() -> list[str]:
    """The CCM's flags in this test (the one place to adapt). /metrics needs no
    credentials: every test CCM's command line (``ccm_argv``) carries OPEN_PATHS,
    the Go manifests' --authorization-always-allow-paths=...,/metrics."""
    return ["--node-monitor-period=1s"]


async def scrape(ccm: CCMProcess) -> str:
    """/metrics as Prometheus would fetch it."""
    response = await ccm.get("/metrics")
    assert response.status_code == 200, response.text[:500]
    return response.text


async def test_every_series_of_every_alert_and_panel_is_exported(
    kube: KubeClient, start_ccm: StartCCM
) -> None:
    nodes = Nodes(kube)
    async with FakeXOServer() as server, FakeXOControlClient(server.url) as xo:
        try:
            world = await World.create(xo, hosts=1)
            vm = await world.vm()
            ccm = await start_ccm(server.url, flags=ccm_flags(), subscribed=True)
            await wait_initialized(kube, await nodes.create("scrape", system_uuid=vm["id"]))
            # A node whose VM XO does not know: it waits, and XO answers 404 for it.
            await nodes.create("scrape-waiting", system_uuid=NO_SUCH_VM)

            async def waiting_counted() -> bool:
                text = await scrape(ccm)
                return metric(text, "xenorchestra_ccm_nodes_waiting_initialization") >= 1

            await until(waiting_counted, within=20, every=0.5)
            samples = exposed(await scrape(ccm))
        finally:
            await nodes.cleanup()

    used = [(f"alert {a['alert']}", a["expr"]) for a in alerts()]
    used += [(f"panel {title!r}", expr) for title, expr in panel_queries()]
    used += [(f"variable ${name}", expr) for name, expr in variable_queries()]
    problems = [
        f"{where}: {why}"
        for where, expr in used
        for selector in selectors(expr)
        if (why := missing(selector, samples)) is not None
    ]
    assert not problems, "\n".join(problems)
    assert samples["xenorchestra_event_stream_state"]  # the stream is open: it was scraped live
    stream = {s["state"]: s for s in samples["xenorchestra_event_stream_state"]}
    assert set(stream) == {"connected", "polling", "down", "stopped"}
