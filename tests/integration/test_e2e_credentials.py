"""Credentials rotated on a running CCM (issue 27, item 4): the console script against
the fake XO over HTTP and the real kube-apiserver.

The token lives in a directory updated as the kubelet updates a mounted Secret (a
new directory, one symlink swap). The rotation is the harsh one: XO accepts the new
token and refuses the old one at the very moment the file changes, before the CCM
had any reason to look; passes every second keep asking XO meanwhile. No pass may
fail, and the labels must keep following the VMs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.kubernetes import KubeClient
from adapters.logging_setup import secret_forms
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.secret_volume import SecretVolume

from .conftest import StartCCM
from .e2e_support import (
    Nodes,
    labels,
    lifecycle_results,
    metric,
    provider_id,
    wait_initialized,
    wait_node,
)

pytestmark = pytest.mark.integration

OLD_TOKEN = "e2e-token-before-7d2c41"
NEW_TOKEN = "e2e-token-after-91ab3e"
FLAGS = ["--node-status-update-frequency=1s", "--node-monitor-period=1s"]


@pytest.fixture
async def xo_server() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(token=OLD_TOKEN) as server:
        yield server


@pytest.fixture
async def nodes(kube: KubeClient) -> AsyncIterator[Nodes]:
    made = Nodes(kube)
    try:
        yield made
    finally:
        await made.cleanup()


def failed_passes(log: str) -> list[str]:
    """Warnings and errors: a failed pass, a node left alone, an event stream refused."""
    return [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]


@pytest.mark.parametrize("layout", ["tokenFile", "go-config-secret"])
async def test_a_token_rotated_while_xo_refuses_the_old_one_fails_no_pass(
    xo_server: FakeXOServer,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
    tmp_path: Path,
    layout: str,
) -> None:
    xo = xo_server.state
    pool = xo.add_pool(name_label="rotation")
    host_a = xo.add_host(pool_id=pool["id"], name_label="a")
    host_b = xo.add_host(pool_id=pool["id"], name_label="b")
    vm = xo.add_vm(name_label="rotated", pool_id=pool["id"], host_id=host_a["id"])
    watched = xo.add_vm(name_label="notready", pool_id=pool["id"], host_id=host_a["id"])

    def files(token: str) -> dict[str, str]:
        if layout == "tokenFile":
            return {"token": token}
        return {"config.yaml": f"url: {xo_server.url}\ntoken: {token}\n"}  # the Go CCM's Secret

    volume = SecretVolume(tmp_path / "secret", files(OLD_TOKEN))
    if layout == "tokenFile":
        config = tmp_path / "cloud.yaml"
        config.write_text(f"url: {xo_server.url}\ntokenFile: {volume.path('token')}\n")
    else:
        config = volume.path("config.yaml")
    ccm = await start_ccm(config=config, flags=FLAGS)
    name = await nodes.create("e2e-rotation", system_uuid=vm["id"])
    # NotReady with a running VM: every lifecycle pass asks XO for it by id
    await nodes.create(
        "e2e-rotation-notready",
        uninitialized=False,
        ready="False",
        provider_id=provider_id(pool["id"], watched["id"]),
    )
    await wait_initialized(kube, name)
    await asyncio.sleep(1.5)  # a few passes with the old token
    before = failed_passes(ccm.log)  # start-up warnings (no delegated auth outside a cluster)
    assert not any("Xen Orchestra" in line or "XO" in line for line in before)

    xo_server.auth.add_token(token=NEW_TOKEN)
    volume.update(files(NEW_TOKEN))
    xo_server.auth.revoke_token(OLD_TOKEN)
    await asyncio.sleep(3.5)  # three passes of each loop, at least
    xo.migrate_vm(vm["id"], host_id=host_b["id"])
    node = await wait_node(kube, name, lambda n: labels(n)[L.ZONE] == host_b["id"])
    await asyncio.sleep(1.5)

    metrics = await ccm.metrics()
    await ccm.stop()
    assert labels(node)[L.ZONE_BETA] == host_b["id"]
    assert failed_passes(ccm.log) == before
    assert lifecycle_results(metrics, "keep-uncertain") == 0
    assert metric(metrics, "xenorchestra_ccm_node_syncs_total", result="error") == 0
    assert "Xen Orchestra credentials reread" in ccm.log
    for token in (OLD_TOKEN, NEW_TOKEN):
        for form in secret_forms(token):
            assert form not in ccm.log
