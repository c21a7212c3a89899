"""KubeClient's plain requests over kept HTTP/1.1 connections (adapters.kubernetes.direct),
against a server scripted byte for byte over loopback, and over TLS against the real
API server on uvloop (the loop the CCM runs at QPS 500).

What must hold: a connection is reused only after a whole answer the server keeps
alive, so an answer that comes late (after its request timed out or was cancelled),
or bytes nobody asked for, are never read as another request's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from kubernetes import client as k8s

from adapters.kubernetes import ApiError, ApiUnavailableError, ClientSettings, KubeClient, connect
from adapters.kubernetes.configuration import api_config
from adapters.kubernetes.watch import WatchStream

pytestmark = pytest.mark.integration

FAST = ClientSettings(qps=0, burst=1, backoff_base=0.01, backoff_max=0.05, max_retries=0)


def answer(body: dict[str, object], *, headers: str = "", status: str = "200 OK") -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
    return f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data


def chunked(body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    half = len(data) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (data[:half], data[half:]))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    return head + b"\r\n" + chunks + b"0\r\n\r\n"


#: What the server does with one request: write these bytes after this many seconds,
#: then close the connection or not.
@dataclass
class Reply:
    data: bytes
    after: float = 0.0
    close: bool = False


@dataclass
class ScriptedServer:
    """Reads each request whole, answers the next scripted reply, counts connections."""

    replies: list[Reply] = field(default_factory=list)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    active: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.idle.clear()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                await asyncio.sleep(reply.after)
                writer.write(reply.data)
                await writer.drain()
                if reply.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.active -= 1
            if not self.active:
                self.idle.set()

    async def finished(self) -> None:
        """Every connection's handler is done (a late reply written, its client gone)."""
        if self.active:
            await asyncio.wait_for(self.idle.wait(), 5.0)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer()
    listener = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    scripted.url = f"http://127.0.0.1:{port}"
    async with listener:
        yield scripted
        listener.close()
        await scripted.finished()


def client_for(url: str) -> KubeClient:
    return KubeClient(api_config(k8s.Configuration(host=url)), FAST, name="test")


async def test_a_kept_connection_carries_the_next_requests(server: ScriptedServer) -> None:
    server.replies = [Reply(answer({"n": i})) for i in range(3)]
    async with client_for(server.url) as kube:
        got = [await kube.request("GET", f"/api/v1/nodes/n{i}") for i in range(3)]
    assert got == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /api/v1/nodes/n0 HTTP/1.1\r\n")


async def test_connections_opened_ahead_carry_the_first_requests(server: ScriptedServer) -> None:
    """``warm`` opens them before any request (the CCM does at start): three requests
    at once then open none, and a fourth connection is not opened past ``workers``."""
    server.replies = [Reply(answer({"n": i}), after=0.1) for i in range(3)]
    settings = ClientSettings(qps=0, burst=1, max_retries=0, workers=3)
    async with KubeClient(api_config(k8s.Configuration(host=server.url)), settings) as kube:
        assert await kube.warm(connections=5) == 3
        await asyncio.sleep(0.05)  # the server's side accepts them
        assert kube.kept_connections == 3 and server.connections == 3
        assert await kube.warm(connections=3) == 0  # kept already
        got = await asyncio.gather(*(kube.request("GET", f"/api/v1/nodes/n{i}") for i in range(3)))
        assert sorted(g["n"] for g in got) == [0, 1, 2]
        assert kube.kept_connections == 3
    assert server.connections == 3


async def test_opening_ahead_where_nothing_listens_fails_in_one_line() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    listener.close()
    await listener.wait_closed()
    async with client_for(url) as kube:
        refused = r"CONNECT /: .*ConnectionRefusedError"
        with pytest.raises(ApiUnavailableError, match=refused) as caught:
            await kube.warm(connections=2)
        assert "\n" not in str(caught.value)
        assert kube.kept_connections == 0


async def test_a_connection_opened_ahead_and_closed_by_the_server_is_not_used(
    server: ScriptedServer,
) -> None:
    server.replies = [Reply(answer({"n": 1}), close=True), Reply(answer({"n": 2}))]
    async with client_for(server.url) as kube:
        assert await kube.warm(connections=1) == 1
        assert await kube.request("GET", "/a") == {"n": 1}  # the server closes it after
        await asyncio.sleep(0.05)
        assert kube.kept_connections == 0
        assert await kube.request("GET", "/b") == {"n": 2}
    assert server.connections == 2


async def test_an_answer_late_past_its_timeout_is_never_read_as_the_next_ones(
    server: ScriptedServer,
) -> None:
    server.replies = [Reply(answer({"for": "first"}), after=0.3), Reply(answer({"for": "second"}))]
    async with client_for(server.url) as kube:
        with pytest.raises(ApiUnavailableError, match="TimeoutError"):
            await kube.request("GET", "/api/v1/nodes/a", request_timeout=(1.0, 0.1))
        await asyncio.sleep(0.4)  # the first answer arrives meanwhile, on the old connection
        second = await kube.request("GET", "/api/v1/nodes/b")
    assert second == {"for": "second"}
    assert server.connections == 2


async def test_a_cancelled_request_closes_its_connection(server: ScriptedServer) -> None:
    server.replies = [Reply(answer({"for": "first"}), after=0.2), Reply(answer({"for": "second"}))]
    async with client_for(server.url) as kube:
        first = asyncio.create_task(kube.request("GET", "/api/v1/nodes/a"))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # at once: the first answer is still to come on the connection it was asked on
        assert await kube.request("GET", "/api/v1/nodes/b") == {"for": "second"}
    assert server.connections == 2


async def test_a_whole_timeout_bounds_the_whole_answer() -> None:
    """A number (not a connect/read pair) is a deadline: a server trickling its answer
    byte by byte does not keep the request alive past it."""
    data = answer({"slow": True})
    stopped = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for byte in data:
                if reader.at_eof():  # the client hung up
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)
        finally:
            writer.close()
            stopped.set()

    listener = await asyncio.start_server(trickle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with listener, client_for(url) as kube:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ApiUnavailableError, match="TimeoutError"):
            await kube.request("GET", "/api/v1/nodes", request_timeout=0.3)
        assert asyncio.get_running_loop().time() - started < 1.0
        await asyncio.wait_for(stopped.wait(), 2.0)


async def test_connection_close_is_honoured(server: ScriptedServer) -> None:
    server.replies = [
        Reply(answer({"n": 1}, headers="Connection: close\r\n")),
        Reply(answer({"n": 2})),
    ]
    async with client_for(server.url) as kube:
        assert await kube.request("GET", "/a") == {"n": 1}
        assert await kube.request("GET", "/b") == {"n": 2}
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_kept_is_replaced(
    server: ScriptedServer,
) -> None:
    server.replies = [Reply(answer({"n": 1}), close=True), Reply(answer({"n": 2}))]
    async with client_for(server.url) as kube:
        assert await kube.request("GET", "/a") == {"n": 1}
        assert await kube.request("PATCH", "/b", body={"x": 1}) == {"n": 2}
    assert server.connections == 2
    assert server.requests[1].endswith(b'\r\n\r\n{"x":1}')


async def test_a_chunked_answer_is_read_whole(server: ScriptedServer) -> None:
    body = {"kind": "NodeList", "items": [{"metadata": {"name": f"n{i}"}} for i in range(50)]}
    server.replies = [Reply(chunked(body)), Reply(answer({"n": 2}))]
    async with client_for(server.url) as kube:
        assert await kube.request("GET", "/api/v1/nodes") == body
        assert await kube.request("GET", "/b") == {"n": 2}
    assert server.connections == 1


async def test_bytes_nobody_asked_for_close_the_connection(server: ScriptedServer) -> None:
    server.replies = [
        Reply(answer({"n": 1}) + answer({"n": "unasked"})),
        Reply(answer({"n": 2})),
    ]
    async with client_for(server.url) as kube:
        assert await kube.request("GET", "/a") == {"n": 1}
        await asyncio.sleep(0.1)
        assert await kube.request("GET", "/b") == {"n": 2}
    assert server.connections == 2


@pytest.mark.parametrize(
    "garbage",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"],
    ids=["not http", "bad length"],
)
async def test_garbage_is_an_unavailable_error_in_one_line(
    server: ScriptedServer, garbage: bytes
) -> None:
    server.replies = [Reply(garbage)]
    async with client_for(server.url) as kube:
        with pytest.raises(ApiUnavailableError) as failure:
            await kube.request("GET", "/api/v1/nodes")
    assert "\n" not in str(failure.value) and "malformed HTTP answer" in str(failure.value)


async def test_an_error_answer_keeps_its_status_reason_and_headers(server: ScriptedServer) -> None:
    status = {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down"}
    server.replies = [
        Reply(answer(status, status="429 Too Many Requests", headers="Retry-After: 0\r\n")),
        Reply(answer({"n": 2})),
    ]
    settings = ClientSettings(qps=0, burst=1, backoff_base=5.0, backoff_max=5.0, max_retries=1)
    configuration = k8s.Configuration(host=server.url)
    async with KubeClient(api_config(configuration), settings, name="test") as kube:
        started = asyncio.get_running_loop().time()
        assert await kube.request("GET", "/a") == {"n": 2}
        assert asyncio.get_running_loop().time() - started < 2.0, "Retry-After: 0 was read"


def test_requests_over_tls_on_uvloop(admin_kubeconfig: Path) -> None:
    """uvloop's TLS transport is what the CCM's requests ride at QPS 500."""

    async def exchange() -> list[str]:
        async with await connect(str(admin_kubeconfig)) as kube:
            names = []
            for _ in range(3):
                version = await kube.request("GET", "/version")
                names.append(str(version["gitVersion"]))
            assert kube._transport is not None and kube._transport._direct is not None
            kept = list(kube._transport._direct._open)
        # closed, not closing: the loop may close right away (it failed with EBUSY)
        assert kept and all(connection.lost.done() for connection in kept)
        return names

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        versions = runner.run(exchange())
    assert len(versions) == 3 and all(v.startswith("v1.") for v in versions)


# -- watches: an answer read as it arrives --------------------------------------------
def event(kind: str, name: str) -> bytes:
    line = json.dumps({"type": kind, "object": {"metadata": {"name": name}}}).encode() + b"\n"
    return b"%x\r\n%s\r\n" % (len(line), line)


WATCH_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@contextlib.asynccontextmanager
async def streaming(steps: list[tuple[float, bytes | None]]) -> AsyncIterator[str]:
    """A server answering the first request with ``steps``: after each delay, these
    bytes (None: hang up). Yields its URL; waits for its handler at the end."""
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for delay, data in steps:
                await asyncio.sleep(delay)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
            else:
                await reader.read()  # until the client hangs up
        except ConnectionError:
            pass
        finally:
            writer.close()
            done.set()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with listener:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        await asyncio.wait_for(done.wait(), 5.0)


async def test_a_watch_reads_events_as_they_arrive_until_the_server_ends_it() -> None:
    steps = [
        (0.0, WATCH_HEAD + event("ADDED", "a")),
        (0.2, event("MODIFIED", "a")[:20]),  # an event cut across two chunks
        (0.05, event("MODIFIED", "a")[20:] + event("DELETED", "a")),
        (0.0, b"0\r\n\r\n"),
    ]
    async with streaming(steps) as url, client_for(url) as kube:
        stream = await kube.watch("/api/v1/nodes", query=[("watch", "1")], request_timeout=(1, 2))
        kinds = []
        while (got := await stream.next_event()) is not None:
            kinds.append(got["type"])
        await stream.aclose()
    assert kinds == ["ADDED", "MODIFIED", "DELETED"]


async def test_a_watch_cut_mid_answer_is_unavailable_in_one_line() -> None:
    steps: list[tuple[float, bytes | None]] = [(0.0, WATCH_HEAD + event("ADDED", "a")), (0.1, None)]
    async with streaming(steps) as url, client_for(url) as kube:
        stream = await kube.watch("/api/v1/nodes", query=[("watch", "1")], request_timeout=(1, 2))
        assert (await stream.next_event() or {}).get("type") == "ADDED"
        with pytest.raises(ApiUnavailableError) as failure:
            await stream.next_event()
        await stream.aclose()
    assert "\n" not in str(failure.value)


async def test_a_silent_watch_times_out_after_its_read_timeout() -> None:
    steps: list[tuple[float, bytes | None]] = [(0.0, WATCH_HEAD), (1.0, None)]
    async with streaming(steps) as url, client_for(url) as kube:
        stream = await kube.watch("/api/v1/nodes", query=[("watch", "1")], request_timeout=(1, 0.2))
        with pytest.raises(ApiUnavailableError, match="TimeoutError"):
            await stream.next_event()
        await stream.aclose()


async def test_a_refused_watch_is_the_servers_error() -> None:
    status = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no watch for you"}
    steps: list[tuple[float, bytes | None]] = [
        (0.0, answer(status, status="403 Forbidden")),
        (0.0, None),
    ]
    async with streaming(steps) as url, client_for(url) as kube:
        with pytest.raises(ApiError) as failure:
            await kube.watch("/api/v1/nodes", query=[("watch", "1")], request_timeout=(1, 1))
    assert failure.value.status == 403 and failure.value.reason == "Forbidden"


async def test_a_watch_far_ahead_of_its_reader_loses_no_event() -> None:
    """Megabytes of events written before the reader reads (past direct.STREAM_BUFFER
    the connection stops reading, then resumes): every event arrives, in order."""
    many = b"".join(event("MODIFIED", f"n{i:05d}-" + "x" * 200) for i in range(12_000))
    steps = [(0.0, WATCH_HEAD + many + b"0\r\n\r\n")]
    async with streaming(steps) as url, client_for(url) as kube:
        stream = await kube.watch("/api/v1/nodes", query=[("watch", "1")], request_timeout=(1, 5))
        await asyncio.sleep(0.3)  # the server writes everything meanwhile
        names = []
        while (got := await stream.next_event()) is not None:
            names.append(got["object"]["metadata"]["name"][:6])
        await stream.aclose()
    assert len(names) == 12_000 and names[0] == "n00000" and names[-1] == "n11999"


# -- through a proxy: aiohttp's session ------------------------------------------------
async def test_requests_and_watches_go_through_the_kubeconfigs_proxy(
    server: ScriptedServer,
) -> None:
    """With a proxy-url, requests and watches are sent to the proxy in its form (the
    absolute URI), through aiohttp; the scripted server plays the proxy here."""
    server.replies = [
        Reply(answer({"n": 1})),
        Reply(WATCH_HEAD + event("ADDED", "a") + b"0\r\n\r\n"),
    ]
    configuration = k8s.Configuration(host="http://api.example:6443")
    configuration.proxy = server.url
    async with KubeClient(api_config(configuration), FAST, name="test") as kube:
        assert await kube.request("GET", "/api/v1/nodes/a") == {"n": 1}
        stream = await kube.watch("/api/v1/nodes", query=[("watch", "1")], request_timeout=(1, 2))
        kinds = [event["type"] async for event in _events(stream)]
    assert kinds == ["ADDED"]
    assert server.requests[0].startswith(b"GET http://api.example:6443/api/v1/nodes/a HTTP/1.1")
    assert server.requests[1].startswith(b"GET http://api.example:6443/api/v1/nodes?watch=1 ")


async def _events(stream: WatchStream) -> AsyncIterator[dict[str, object]]:
    try:
        while (got := await stream.next_event()) is not None:
            yield got
    finally:
        await stream.aclose()


async def test_closing_the_client_closes_a_connection_in_use(server: ScriptedServer) -> None:
    """A request still waiting when the client closes fails; its connection is closed
    then, not left open when the request would have returned it to the pool."""
    server.replies = [Reply(answer({"late": True}), after=0.3)]
    kube = client_for(server.url)
    waiting = asyncio.create_task(kube.request("GET", "/api/v1/nodes/a"))
    await asyncio.sleep(0.1)
    await kube.aclose()
    with pytest.raises(ApiUnavailableError):
        await waiting
    transport = kube._transport
    assert transport is not None and transport._direct is not None
    assert not [c for c in transport._direct._open if c.open]
