"""Go CCM flags whose meaning is in the process around the controllers, on the real
kube-apiserver: --min-resync-period, --master."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from adapters.kubernetes import KubeClient, KubernetesNodeStore, connect

from .controlplane import ControlPlane
from .kube import create_node, delete_node, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def one_node(
    control_plane: ControlPlane, kube: KubeClient
) -> AsyncIterator[tuple[str, KubeClient]]:
    """A Node of this test, and a client of its own for the store under test."""
    name = unique("resync")
    await create_node(kube, name)
    client = await connect(str(control_plane.admin_kubeconfig), name="resync")
    try:
        yield name, client
    finally:
        await client.aclose()
        await delete_node(kube, name)


async def deliveries(store: KubernetesNodeStore, name: str, *, within: float, up_to: int) -> int:
    """How often the watch hands ``name`` over within ``within`` seconds (at most ``up_to``)."""
    seen = 0

    async def count() -> None:
        nonlocal seen
        async for node in store.watch():
            seen += node.name == name
            if seen >= up_to:
                return

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await count()
    return seen


async def test_min_resync_period_hands_every_cached_node_to_watchers_again(
    one_node: tuple[str, KubeClient],
) -> None:
    name, client = one_node
    async with KubernetesNodeStore(client, resync_period=0.2) as store:
        gets_before = client.requests["GET"]
        assert await deliveries(store, name, within=10, up_to=3) == 3
        # Re-delivered from the cache: no re-list per resync (the watch may reconnect).
        assert client.requests["GET"] - gets_before <= 2


async def test_without_resync_a_node_is_delivered_once(one_node: tuple[str, KubeClient]) -> None:
    name, client = one_node
    async with KubernetesNodeStore(client) as store:
        assert await deliveries(store, name, within=1.0, up_to=3) == 1


async def test_master_overrides_the_kubeconfig_server(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    config = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"  # nothing there
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    client = await connect(str(broken), master=control_plane.server, name="master")
    try:
        version = await client.request("GET", "/version")
        assert version["gitVersion"].startswith("v1.")
    finally:
        await client.aclose()
