"""What the CCM opens at start, before it reports ready, against the real API server:
its clients' connections (the first burst of joins paid their TLS handshakes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from entrypoints.app import _warm_up
from entrypoints.container import Container, provide, shutdown
from entrypoints.flags.settings import parse_command_line

pytestmark = pytest.mark.integration


class NoXO:
    """The XO snapshot of the warm-up: not what these tests look at."""

    async def take(self) -> None:
        return None


async def test_the_warm_up_opens_a_connection_per_cloud_node_worker(
    admin_kubeconfig: Path,
) -> None:
    settings = parse_command_line(
        [f"--kubeconfig={admin_kubeconfig}", "--concurrent-node-syncs=3", "--leader-elect=false"]
    )
    container = Container(settings=settings)
    container.status_snapshots.override(NoXO())
    try:
        await _warm_up(container, settings)
        kube = await provide(container.kube_client)
        events = await provide(container.event_client)
        assert (kube.kept_connections, events.kept_connections) == (3, 1)
        # the first requests of three workers at once ride them, opening none
        await asyncio.gather(*(kube.request("GET", "/version") for _ in range(3)))
        assert kube.kept_connections == 3
    finally:
        await shutdown(container)
