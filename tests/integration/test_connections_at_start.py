"""What the CCM opens at start, before it reports ready, against the real API server:
its clients' connections (the first burst of joins paid their TLS handshakes), and
the size of what each TLS connection of the standard loop keeps to read into."""

from __future__ import annotations

import asyncio
from asyncio import sslproto
from pathlib import Path

import pytest

from adapters.kubernetes import ClientSettings, KubeClient, connect
from entrypoints.app import TLS_READ_SIZE, _warm_up, tls_read_size
from entrypoints.container import Container, provide, shutdown
from entrypoints.flags.settings import parse_command_line

from .controlplane import ControlPlane, write_kubeconfig

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


async def test_an_api_server_that_never_answers_delays_the_start_once_not_per_client(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The clients are warmed together: against a server that takes the connection and
    never answers the TLS handshake, the start waits one connect timeout, not one per
    client, and keeps nothing half open."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    listener = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    kubeconfig = write_kubeconfig(
        tmp_path / "silent.kubeconfig",
        server=f"https://127.0.0.1:{port}",
        ca_file=control_plane.ca_file,
        user="nobody",
        token="t0k3n-not-used",
    )
    settings = parse_command_line(
        [f"--kubeconfig={kubeconfig}", "--concurrent-node-syncs=2", "--leader-elect=false"]
    )
    container = Container(settings=settings)
    container.status_snapshots.override(NoXO())
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await _warm_up(container, settings)
        took = loop.time() - started
        kube = await provide(container.kube_client)
        events = await provide(container.event_client)
        assert (kube.kept_connections, events.kept_connections) == (0, 0)
    finally:
        await shutdown(container)
        for writer in held:
            writer.close()
        listener.close()
        await listener.wait_closed()
    timeout = ClientSettings().connect_timeout
    assert timeout <= took < 1.5 * timeout


def read_buffers(kube: KubeClient) -> list[int]:
    """The size of each TLS read buffer of the client's open connections."""
    assert kube._transport is not None and kube._transport._direct is not None
    return [
        len(connection._transport._ssl_protocol._ssl_buffer)  # type: ignore[union-attr]
        for connection in kube._transport._direct._open
    ]


async def test_the_ccms_tls_connections_on_the_standard_loop_keep_64_kib_to_read_into(
    admin_kubeconfig: Path,
) -> None:
    """The standard loop's default, 256 KiB per connection filled with zeros and
    kept: a megabyte of resident memory for the CCM's few connections."""
    default = sslproto.SSLProtocol.max_size
    with tls_read_size(TLS_READ_SIZE):
        async with await connect(str(admin_kubeconfig), name="small") as kube:
            await kube.warm(connections=2)
            await kube.request("GET", "/api/v1/nodes")
            assert read_buffers(kube) == [TLS_READ_SIZE] * 2
    assert sslproto.SSLProtocol.max_size == default == 256 * 1024  # restored
    async with await connect(str(admin_kubeconfig), name="default") as kube:
        await kube.warm(connections=1)
        assert read_buffers(kube) == [default]
