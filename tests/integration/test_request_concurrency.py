"""The API client keeps up with the workers: ``--concurrent-node-syncs=10`` means ten
registrations with their writes in flight at once, and a busy pool reuses its
connections instead of opening (and handshaking) new ones.

An HTTP proxy in front of the real kube-apiserver holds chosen requests for a
while and counts how many it holds at once, and on how many connections they
came: with a fixed pool of four threads, ten workers were held to four writes in
flight whatever the round trip, which on a cluster with real latency caps
registration at ``4 / RTT`` requests per second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from adapters.kubernetes import ClientSettings, KubeClient, connect
from entrypoints.testkits.fake_xo import FakeXOServer, FakeXOState

from .conftest import StartCCM
from .controlplane import ControlPlane
from .kube import create_node, delete_node, get_node, unique
from .proxy import HttpProxy, Upstream, proxied_kubeconfig
from .waiting import until

pytestmark = pytest.mark.integration

HOLD = 0.3  # seconds each held request waits at the proxy


class HeldRequests:
    """A proxy rule: requests it matches wait ``HOLD`` seconds before going on;
    it records the most held at once and the client ports they came from."""

    def __init__(self, *, method: str, path_prefix: str) -> None:
        self.method = method
        self.path_prefix = path_prefix
        self.in_flight = 0
        self.peak = 0
        self.held = 0
        self.ports: set[int] = set()

    async def __call__(
        self, request: web.Request, forward: Callable[[], Awaitable[Upstream]]
    ) -> web.Response | None:
        if request.method != self.method or not request.path.startswith(self.path_prefix):
            return None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.ports.add(int(peer[1]))
        self.in_flight += 1
        self.held += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(HOLD)
            upstream = await forward()
        finally:
            self.in_flight -= 1
        status, headers, body = upstream
        return web.Response(status=status, headers=headers, body=body)


async def test_ten_node_sync_workers_have_ten_node_writes_in_flight(
    http_proxy: HttpProxy,
    control_plane: ControlPlane,
    kube: KubeClient,
    start_ccm: StartCCM,
    tmp_path: Path,
) -> None:
    prefix = unique("inflight")
    held = HeldRequests(method="PATCH", path_prefix=f"/api/v1/nodes/{prefix}")
    http_proxy.rules.append(held)
    async with FakeXOServer(state=FakeXOState.from_samples()) as xo:
        vms = [vm["id"] for vm in xo.state.populate(count=10, prefix=prefix)]
        ccm = await start_ccm(
            xo.url,
            kubeconfig=proxied_kubeconfig(http_proxy, control_plane, tmp_path),
            flags=["--concurrent-node-syncs=10", "--kube-api-qps=500", "--kube-api-burst=1000"],
            ready=False,
        )
        await ccm.wait_ready(within=30)
        names = [f"{prefix}-{i}" for i in range(len(vms))]
        try:
            await asyncio.gather(
                *(create_node(kube, n, system_uuid=vm) for n, vm in zip(names, vms, strict=True))
            )

            async def all_initialized() -> bool:
                found = [await get_node(kube, n) for n in names]
                return all(n["spec"].get("providerID") for n in found)

            await until(all_initialized, within=30, every=0.2)
        finally:
            await asyncio.gather(*(delete_node(kube, n) for n in names))
    # Every worker had its node's write held at the proxy at the same time (a few
    # of the ten may have been a moment apart); a pool of four never exceeds four.
    assert held.peak >= 8, (held.peak, held.held)


async def test_a_pool_larger_than_five_per_cpu_reuses_its_connections(
    http_proxy: HttpProxy, control_plane: ControlPlane, tmp_path: Path
) -> None:
    workers = 24  # beyond urllib3's pool of 5 connections per CPU on this machine
    held = HeldRequests(method="GET", path_prefix="/api/v1/namespaces/default")
    http_proxy.rules.append(held)
    client = await connect(
        str(proxied_kubeconfig(http_proxy, control_plane, tmp_path)),
        settings=ClientSettings(qps=1000, burst=1000, workers=workers),
        name="wide",
    )
    async with client:
        for _ in range(2):
            await asyncio.gather(
                *(client.request("GET", "/api/v1/namespaces/default") for _ in range(workers))
            )
    assert held.peak == workers
    # Round two went over round one's connections: none was closed for lack of room.
    assert len(held.ports) == workers, sorted(held.ports)
