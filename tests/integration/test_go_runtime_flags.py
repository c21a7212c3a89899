"""Go CCM flags whose meaning is in the process around the controllers, on the real
kube-apiserver: --min-resync-period, --master."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from adapters.kubernetes import KubeClient, KubernetesNodeStore, connect

from .controlplane import ControlPlane
from .kube import create_node, delete_node, unique

pytestmark = pytest.mark.integration


async def test_min_resync_period_hands_every_cached_node_to_watchers_again(
    control_plane: ControlPlane, kube: KubeClient
) -> None:
    name = unique("resync")
    await create_node(kube, name)
    client = await connect(str(control_plane.admin_kubeconfig), name="resync")
    store = KubernetesNodeStore(client, resync_period=0.2)
    try:
        async with store:
            seen = 0
            gets_before = client.requests["GET"]
            async with asyncio.timeout(10):
                async for node in store.watch():
                    if node.name == name:
                        seen += 1
                    if seen >= 3:
                        break
            # Re-delivered from the cache: at most the watch reconnects, no re-list per resync.
            assert client.requests["GET"] - gets_before <= 2
    finally:
        await client.aclose()
        await delete_node(kube, name)


async def test_without_resync_a_node_is_delivered_once(
    control_plane: ControlPlane, kube: KubeClient
) -> None:
    name = unique("no-resync")
    await create_node(kube, name)
    client = await connect(str(control_plane.admin_kubeconfig), name="no-resync")
    store = KubernetesNodeStore(client)
    try:
        async with store:
            seen = 0

            async def count() -> None:
                nonlocal seen
                async for node in store.watch():
                    seen += node.name == name

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):
                    await count()
            assert seen == 1
    finally:
        await client.aclose()
        await delete_node(kube, name)


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
