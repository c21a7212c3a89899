"""A loopback HTTP server that answers each XO route with bytes chosen by a test.

The fake XO server answers what XO documents; a fuzz needs the opposite: any
status, any header (a ``Content-Encoding`` the body does not have), any body
(invalid UTF-8, 100,000 brackets, ``1e400``), and event-stream frames that
break every rule. So this server speaks HTTP/1.1 by hand over asyncio streams
and sends each answer byte for byte, one request per connection, and the XO
adapter under test talks to it over a real socket with its real HTTP client.

Routes are keyed by what XO serves under ``/rest/v0``: ``vms``, ``vm`` (one
by id), ``hosts``, ``host``, ``pools``, ``pool``, ``subscribe`` (the POST of an
event subscription); ``GET /events`` streams ``init``, then
:attr:`CannedXO.frames` on the first connection only, then a sentinel VM
``add`` frame on every connection, and holds the stream open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

API = "/rest/v0"
#: The VM of the sentinel frame: a change with this id proves the stream survived.
SENTINEL_VM = "5e471e10-0000-4000-8000-00000000beef"
SENTINEL_POOL = "5e471e10-0000-4000-8000-0000000000aa"


@dataclass(frozen=True)
class Canned:
    """One HTTP answer, sent exactly as given (Content-Length is added)."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: bytes = b"[]"


def sentinel_frame() -> bytes:
    vm = {
        "$subscription": "VM",
        "id": SENTINEL_VM,
        "name_label": "sentinel",
        "power_state": "Running",
        "$pool": SENTINEL_POOL,
        "$container": SENTINEL_POOL,
    }
    return f"event: add\ndata: {json.dumps(vm)}\n\n".encode()


def route_of(method: str, path: str) -> str:
    """The route key of a request path (``other`` for anything else)."""
    path = path.split("?", 1)[0].removeprefix(API)
    parts = [p for p in path.split("/") if p]
    if method == "POST" and len(parts) == 3 and parts[0] == "events":
        return "subscribe"
    if method == "GET" and parts == ["events"]:
        return "events"
    if method == "GET" and len(parts) in (1, 2) and parts[0] in ("vms", "hosts", "pools"):
        return parts[0] if len(parts) == 1 else parts[0][:-1]
    return "other"


@dataclass
class CannedXO:
    """Serve :attr:`routes` (route key -> :class:`Canned`) on 127.0.0.1; 404 for the rest."""

    routes: dict[str, Canned] = field(default_factory=dict)
    frames: list[bytes] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    _server: asyncio.Server | None = None
    _streams: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> CannedXO:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Closing the server cancels held streams: end quietly (a cancelled
            # handler task makes asyncio 3.11 log a spurious callback error).
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        route = route_of(method, path)
        self.requests[route] += 1
        if route == "events":
            await self._stream(reader, writer)
            return
        canned = self.routes.get(route, Canned(404, body=b'{"error": "no such object"}'))
        lines = [f"HTTP/1.1 {canned.status} Canned"]
        lines += [f"{k}: {v}" for k, v in canned.headers]
        lines += [f"Content-Length: {len(canned.body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1") + canned.body)
        await writer.drain()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._streams += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        )
        writer.write(f"event: init\ndata: {json.dumps({'id': 'fuzz'})}\n\n".encode())
        if self._streams == 1:
            for frame in self.frames:
                writer.write(frame)
        # Blank lines first: a fuzzed frame left unterminated ends here, not in the sentinel.
        writer.write(b"\n\n" + sentinel_frame())
        await writer.drain()
        await reader.read()  # hold the stream until the client goes away
