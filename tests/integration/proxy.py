"""Proxies in front of the API server: a TCP one a test can cut (a partition), and
an HTTP one whose rules answer or alter chosen requests (a server, or a middlebox,
answering what the API does not document)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from entrypoints.testkits.local_cluster.pki import CertPair

from .controlplane import ControlPlane, write_kubeconfig


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``cut()`` drops every connection
    and stops listening, as a network partition would (TLS passes through)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()


Upstream = tuple[int, dict[str, str], bytes]
#: A rule sees each request first; it may answer it (a response), or let it pass (None).
#: ``forward()`` sends the request on and returns the server's whole answer.
Rule = Callable[[web.Request, Callable[[], Awaitable[Upstream]]], Awaitable[web.Response | None]]

_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host")
)


class HttpProxy:
    """A plain-HTTP reverse proxy to the API server, to corrupt or delay its answers.

    Clients talk HTTP to 127.0.0.1:``port`` (a kubeconfig without credentials);
    the proxy talks TLS to the API server as ``client`` (a client certificate).
    Each request goes through ``rules`` in order: the first one that returns a
    response answers it; otherwise the answer is the server's, streamed (so
    watches work through the proxy).
    """

    def __init__(self, server: str, *, ca_file: Path, client: CertPair) -> None:
        tls = ssl.create_default_context(cafile=str(ca_file))
        tls.load_cert_chain(str(client.cert), str(client.key))
        self._upstream = httpx.AsyncClient(
            base_url=server,
            verify=tls,
            timeout=httpx.Timeout(10.0, read=None),
        )
        self.rules: list[Rule] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A watch relayed for a client that has gone stays open until the API server
        # sends something: stopping cancels it after a moment instead of aiohttp's 60 s.
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._upstream.aclose()
        for _ in range(5):  # let the loop finish closing the streams' inner generators
            await asyncio.sleep(0)

    def _build(self, request: web.Request, body: bytes) -> httpx.Request:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        return self._upstream.build_request(
            request.method, request.rel_url.path_qs, headers=headers, content=body
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()

        async def forward() -> Upstream:
            answer = await self._upstream.send(self._build(request, body))
            return answer.status_code, _kept(answer.headers), answer.content

        for rule in self.rules:
            replaced = await rule(request, forward)
            if replaced is not None:
                return replaced
        answer = await self._upstream.send(self._build(request, body), stream=True)
        response = web.StreamResponse(status=answer.status_code, headers=_kept(answer.headers))
        try:
            await response.prepare(request)
            # aclosing: a watch cut by the client must not leave the generator to be
            # closed later by the loop (a task the test would find running)
            async with contextlib.aclosing(answer.aiter_bytes()) as chunks:
                async for chunk in chunks:
                    await response.write(chunk)
        except (ConnectionError, httpx.HTTPError):
            pass  # either side went away: a watch ending
        finally:
            await answer.aclose()
        return response


def _kept(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


def proxied_kubeconfig(proxy: HttpProxy, control_plane: ControlPlane, tmp_path: Path) -> Path:
    """A kubeconfig for the API server through ``proxy`` (which holds the credentials)."""
    return write_kubeconfig(
        tmp_path / "via-http-proxy.kubeconfig",
        server=proxy.url,
        ca_file=control_plane.ca_file,
        user="proxied",
    )
