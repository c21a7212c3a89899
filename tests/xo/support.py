"""Helpers shared by the XO adapter tests and the contract suite."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.config import CloudConfig
from adapters.xenorchestra import RetryPolicy, StreamPolicy, XOHttpClient, XOInventory
from adapters.xenorchestra.auth import Credentials
from domain.model import Host, Pool, VMChange
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.world import Given

TOKEN = "tok-3f9a1c77d2e84b6a"
USERNAME = "ccm-admin"
PASSWORD = "pw-91b7e2c4a5d3"

#: Retries in milliseconds, bounded by a 2 s deadline.
FAST_RETRY = RetryPolicy(deadline=2.0, initial_backoff=0.01, max_backoff=0.05, jitter=0.1)
#: A stream that notices silence in 1 s and reconnects at once.
FAST_STREAM = StreamPolicy(
    ping_timeout=1.0, reconnect_initial=0.02, reconnect_max=0.1, poll_interval=0.05
)
#: The fake's ping period in tests (XO: 30 s).
PING_INTERVAL = 0.2


def make_inventory(
    xo: FakeXOServer,
    *,
    token: str | None = TOKEN,
    username: str | None = None,
    password: str | None = None,
    retry: RetryPolicy = FAST_RETRY,
    stream: StreamPolicy = FAST_STREAM,
    observer: Any = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    client_timeout: float = 5.0,
    url: str | None = None,
) -> XOInventory:
    config = CloudConfig(
        url=url or xo.url,
        token=SecretStr(token) if token else None,
        username=username,
        password=SecretStr(password) if password else None,
        insecure=insecure,
        caFile=ca_file,
        clientTimeout=client_timeout,
    )
    return XOInventory.from_config(config, observer=observer, retry=retry, stream=stream)


async def next_change(stream: AsyncIterator[VMChange], within: float = 5.0) -> VMChange:
    async with asyncio.timeout(within):
        return await anext(stream)


class ChangeCollector:
    """Drains a change stream in a task, so a test can wait for "nothing" safely.

    Timing out an ``anext()`` on an async generator cancels the generator
    itself (it is finished afterwards); waiting on this queue does not.
    """

    def __init__(self, changes: AsyncIterator[VMChange]) -> None:
        self._queue: asyncio.Queue[VMChange] = asyncio.Queue()
        self._task = asyncio.create_task(self._drain(changes))

    async def _drain(self, changes: AsyncIterator[VMChange]) -> None:
        async with aclosing(changes):  # type: ignore[type-var]
            async for change in changes:
                self._queue.put_nowait(change)

    async def next(self, within: float = 5.0) -> VMChange:
        """The next change; TimeoutError if none comes ``within`` seconds."""
        getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait(
            {getter, self._task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        if getter in done:
            return getter.result()
        getter.cancel()
        if self._task in done:
            self._task.result()  # raises what ended the stream
            raise AssertionError("the change stream ended")
        raise TimeoutError(f"no change within {within}s")

    async def aclose(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


@asynccontextmanager
async def collecting(changes: AsyncIterator[VMChange]) -> AsyncIterator[ChangeCollector]:
    collector = ChangeCollector(changes)
    try:
        yield collector
    finally:
        await collector.aclose()


@dataclass
class RecordingObserver:
    """An XORequestObserver that keeps every call."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        assert seconds >= 0
        self.calls.append((endpoint, error))


@dataclass(frozen=True)
class World:
    pool_a: str
    pool_b: str
    host_a1: str
    host_a2: str
    host_b1: str


POOL_A = "8a3c1e54-7f0b-4c8e-9d21-0b6f3a9e2c11"
POOL_B = "b7569d99-30f8-178a-7d94-801de3e29b5b"
HOST_A1 = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
HOST_A2 = "2d3e4f5a-6b7c-4d8e-9fa0-b1c2d3e4f5a6"
HOST_B1 = "b61a5c92-700e-4966-a13b-00633f03eea8"


#: Two pools: A (hosts A1, A2) and B (host B1); laid out by the XO and contract suites.
TWO_POOLS = Given(
    pools=(Pool(id=POOL_A, name_label="Pool A"), Pool(id=POOL_B, name_label="Pool B")),
    hosts=(
        Host(id=HOST_A1, name_label="host a1", pool_id=POOL_A),
        Host(id=HOST_A2, name_label="host a2", pool_id=POOL_A),
        Host(id=HOST_B1, name_label="host b1", pool_id=POOL_B),
    ),
)


def build_world(xo: FakeXOServer) -> World:
    """The fake XO holds :data:`TWO_POOLS`."""
    TWO_POOLS.onto_fake_xo(xo.state)
    return World(POOL_A, POOL_B, HOST_A1, HOST_A2, HOST_B1)


async def assert_no_tasks_left() -> None:
    """Fail when a test leaves an asyncio task running (a leaked stream, server, retry)."""
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not left, f"tasks left behind: {left}"


def replayed(response: httpx.Response, body: bytes) -> httpx.Response:
    """``response`` again, its ``body`` already read (decoded: gzip undone), handed on
    as a stream as the adapter reads answers (a transport that held it on the wire)."""
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(response.status_code, headers=headers, stream=httpx.ByteStream(body))


@dataclass
class Held:
    """One answer held on the wire: ``answered`` once XO sent it (its content is fixed
    then), handed on once ``release`` is set."""

    answered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class HeldAnswers(httpx.AsyncHTTPTransport):
    """The network to the fake XO, where the next answers for a path are held, one
    :class:`Held` per :meth:`hold`, in the order XO sends them: an answer that
    arrives after XO's state changed, as a slow network delivers it."""

    def __init__(self) -> None:
        super().__init__()
        self._holds: dict[str, deque[Held]] = {}

    def hold(self, path: str) -> Held:
        held = Held()
        self._holds.setdefault(path, deque()).append(held)
        return held

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        waiting = self._holds.get(request.url.path.removeprefix("/rest/v0"))
        if not waiting:
            return response
        held = waiting.popleft()
        body = await response.aread()  # decoded: gzip undone
        held.answered.set()
        await held.release.wait()
        return replayed(response, body)


def held_inventory(xo: FakeXOServer, network: HeldAnswers) -> XOInventory:
    """An inventory reaching the fake XO through ``network``."""
    return XOInventory(
        XOHttpClient(url=xo.url, credentials=Credentials(token=SecretStr(TOKEN)), transport=network)
    )
