"""XO answers larger than ``maxResponseBytes`` fail that request, and are never held
whole (issue 30, item 4).

A 400 MiB list answer took the CCM to 1.77 GiB. Here: the fake XO over HTTP with
a small limit from the cloud config, and tiny servers sending what XO never should:
a gzip bomb, a body that goes on and on, a Content-Length of a gigabyte, an
endless server-sent event. Each fails with one line naming the limit, and the
memory the call allocates stays near the limit (tracemalloc: the body, the decoded
chunks and the parse are all Python objects).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from httpx_sse import EventSource

from adapters.config import parse_config
from adapters.xenorchestra import XOInventory
from domain.errors import ProtocolError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import FAST_RETRY, FAST_STREAM, TOKEN, World

MiB = 1024 * 1024


def inventory_for(url: str, **config: Any) -> XOInventory:
    """The adapter as the process builds it: from the cloud config's keys."""
    parsed = parse_config({"url": url, "token": TOKEN, "clientTimeout": 5, **config}, origin="t")
    return XOInventory.from_config(parsed, retry=FAST_RETRY, stream=FAST_STREAM)


async def peak_while(call: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, float]:
    """What ``call`` raised (None if nothing), and the most memory it held at once (MiB)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    raised: BaseException | None = None
    try:
        await call()
    except Exception as err:
        raised = err
    finally:
        peak = tracemalloc.get_traced_memory()[1] / MiB
        tracemalloc.stop()
    return raised, peak


@asynccontextmanager
async def tiny_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """An HTTP server on loopback answering every path with ``handler``: its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_list_answer_past_the_limit_fails_that_request_with_one_line(
    xo: FakeXOServer, world: World
) -> None:
    for i in range(600):
        xo.state.add_vm(name_label=f"vm-{i}", pool_id=world.pool_a)
    one = next(iter(xo.state.objects["VM"]))
    async with inventory_for(xo.url, maxResponseBytes="64Ki") as small:
        with pytest.raises(ProtocolError) as raised:
            await small.snapshot()
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith("Xen Orchestra GET /vms: the answer is larger than ")
        assert "maxResponseBytes (64Ki bytes)" in message
        # One request failed, not the adapter: a small answer still reads.
        assert (await small.get_vm(vm_id=one)).id == one
    async with inventory_for(xo.url) as default:
        assert len((await default.snapshot()).vms) == 600


async def test_a_gzip_bomb_is_cut_at_the_limit_with_bounded_memory() -> None:
    """64 MiB of zeros in 64 KiB of gzip: decoded step by step, stopped past 4 MiB."""
    bomb = gzip.compress(b"0" * (64 * MiB), compresslevel=1)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with tiny_server(handler) as url, inventory_for(url, maxResponseBytes="4Mi") as inv:
        raised, peak = await peak_while(lambda: inv.client.get_json("/vms", endpoint="GET /vms"))
    assert isinstance(raised, ProtocolError)
    assert "maxResponseBytes (4Mi bytes)" in str(raised)
    assert peak < 12, f"held {peak:.1f} MiB at once"


async def test_a_body_that_goes_on_is_not_read_past_the_limit() -> None:
    sent = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * MiB
        try:
            for _ in range(48):
                await response.write(chunk)
                sent += len(chunk)
        except ConnectionError:
            pass
        return response

    async with tiny_server(handler) as url, inventory_for(url, maxResponseBytes="2Mi") as inv:
        started = time.monotonic()
        raised, peak = await peak_while(lambda: inv.client.get_json("/vms", endpoint="GET /vms"))
        took = time.monotonic() - started
    assert isinstance(raised, ProtocolError)
    assert "maxResponseBytes (2Mi bytes)" in str(raised)
    assert peak < 8, f"held {peak:.1f} MiB at once"
    assert took < 5


async def test_a_declared_length_past_the_limit_is_refused_unread() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Length": str(1 << 30)}
        )
        await response.prepare(request)
        await response.write(b"[")
        await release.wait()  # and nothing more
        return response

    async with tiny_server(handler) as url, inventory_for(url, maxResponseBytes="1Mi") as inv:
        started = time.monotonic()
        try:
            with pytest.raises(ProtocolError, match=r"maxResponseBytes \(1Mi bytes\)"):
                await inv.client.get_json("/vms", endpoint="GET /vms")
        finally:
            release.set()
        assert time.monotonic() - started < 2


async def test_an_event_past_the_limit_ends_that_stream_connection() -> None:
    """Each server-sent event is bounded too: an init frame passes, a data line that
    never ends fails the stream (the change stream then reconnects)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: init\ndata: {"id": "c1"}\n\n')
        try:
            await response.write(b"event: VM\ndata: ")
            for _ in range(16):
                await response.write(b"x" * MiB)
        except ConnectionError:
            pass
        return response

    async with tiny_server(handler) as url, inventory_for(url, maxResponseBytes="1Mi") as inv:

        async def read() -> None:
            async with inv.client.stream("/events", endpoint="GET /events") as response:
                frames = EventSource(response).aiter_sse()
                async with aclosing(frames):
                    first = await anext(frames)
                    assert (first.event, json.loads(first.data)) == ("init", {"id": "c1"})
                    await anext(frames)

        raised, peak = await peak_while(read)
    assert isinstance(raised, ProtocolError), raised
    assert str(raised).startswith("Xen Orchestra GET /events: the event is larger than ")
    assert "maxResponseBytes (1Mi bytes)" in str(raised)
    assert peak < 8, f"held {peak:.1f} MiB at once"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, 32 * MiB, id="default-32Mi"),
        pytest.param("64Mi", 64 * MiB, id="binary-suffix"),
        pytest.param("100MB", 100_000_000, id="decimal-suffix"),
        pytest.param(1048576, MiB, id="plain-bytes"),
    ],
)
def test_max_response_bytes_is_read_from_the_cloud_config(value: Any, expected: int) -> None:
    extra = {} if value is None else {"maxResponseBytes": value}
    config = parse_config({"url": "https://xo", "token": TOKEN, **extra}, origin="config.yaml")
    assert config.max_response_bytes == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("lots", "'lots' is neither a number of bytes nor a size", id="not-a-size"),
        pytest.param(1000, "greater than or equal to 65536", id="too-small"),
    ],
)
def test_a_bad_max_response_bytes_is_one_line(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_config({"url": "https://xo", "token": TOKEN, "maxResponseBytes": value}, origin="c")
    assert "maxResponseBytes" in str(raised.value) and "\n" not in str(raised.value)
