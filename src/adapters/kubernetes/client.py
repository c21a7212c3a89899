"""The Kubernetes API client: the official package's configuration, requests sent
from the loop, watches read in threads.

The kubernetes package (its sync client, not the experimental ``kubernetes.aio``)
loads kubeconfigs, in-cluster service accounts, exec plugins and refreshes tokens:
that is the mature part, and it is used for every request's configuration and
credentials. Plain requests are then sent by :mod:`transport` with aiohttp from the
event loop (half the CPU per request of the generated client's urllib3 path, which
is kept for a configuration aiohttp cannot follow: a SOCKS proxy). Nothing here
blocks the loop:

- what may block (TLS files, a token refresh every few seconds, the urllib3 path,
  decoding a large answer) runs on this client's own ``ThreadPoolExecutor``
  (``workers`` threads) through ``loop.run_in_executor``, never the loop's default one;
- config loading (file reads) runs in a one-shot thread;
- each watch owns one thread that reads its stream; closing the watch shuts
  the socket down from the loop (urllib3's ``HTTPResponse.shutdown``), which
  wakes the blocked read, so no thread outlives ``aclose()``.

Every call passes the client-side token bucket (``--kube-api-qps`` /
``--kube-api-burst``) first, so a throttled caller waits without holding a
thread, and 429/5xx answers are retried with jittered exponential backoff
(``Retry-After`` honoured). Writes are guarded by resourceVersion or uid
preconditions, so a replay after an ambiguous 5xx fails with a conflict at
worst instead of applying twice.

Responses are decoded to plain dicts rather than generated models: a Node is
kilobytes of managedFields and images the CCM never reads, and pydantic
validation of all that on every watch event is pure cost. Adapters convert
the few fields they need into domain values.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiohttp
from kubernetes import client as k8s
from loguru import logger

from adapters import jsonwire
from adapters.kubernetes.configuration import (
    ConfigSource,
    load_configuration,
    load_kubeconfig,
    run_in_thread,
)
from adapters.kubernetes.credentials import invalidate
from adapters.kubernetes.errors import (
    NETWORK_ERRORS,
    ApiError,
    ApiUnavailableError,
    UnsendableRequestError,
    describe_network_error,
    undecodable_answer,
)
from adapters.kubernetes.generated import GeneratedClient
from adapters.kubernetes.ratelimit import Backoff, TokenBucket
from adapters.kubernetes.transport import LoopTransport, supported
from adapters.kubernetes.watch import WatchStream
from adapters.kubernetes.wire import JSON, JsonObject, Query, Timeout

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
#: Answers larger than this are decoded in a pool thread, not on the loop (a page
#: of a 5,000-Node list is megabytes of JSON).
DECODE_ON_LOOP_MAX = 256 * 1024
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How one client talks to the API server.

    ``qps``/``burst`` are ``--kube-api-qps``/``--kube-api-burst`` (client-go
    and the reference CCM default to 20/30). ``workers`` bounds concurrent
    requests (connections kept, and threads for what may block; watches have
    their own threads). ``max_retries`` applies to 429 and 5xx answers only.
    ``loop_transport`` False sends requests the generated client's way, in the
    pool's threads (what a configuration aiohttp cannot follow gets anyway).
    """

    qps: float = 20.0
    burst: int = 30
    workers: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 10.0
    user_agent: str = "xenorchestra-cloud-controller-manager"
    loop_transport: bool = True

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


async def connect(
    kubeconfig: str | None = None,
    *,
    qps: float = 20.0,
    burst: int = 30,
    context: str | None = None,
    settings: ClientSettings | None = None,
    name: str = "kube",
    master: str | None = None,
) -> KubeClient:
    """A client whose configuration is loaded now (so a bad kubeconfig fails here):
    ``await connect(flags.kubeconfig, qps=flags.kube_api_qps, burst=flags.kube_api_burst)``."""
    configuration = await load_configuration(kubeconfig, context=context, master=master)
    base = settings or ClientSettings()
    return KubeClient(configuration, replace(base, qps=qps, burst=burst), name=name)


class KubeClient:
    """One API connection pool, one bounded thread pool, one token bucket.

    ``request`` is the only way requests are made (watches: ``watch``), so
    rate limiting, retries, timeouts, error decoding and request counting
    apply to all of them. ``requests`` counts requests sent, per HTTP method
    (retries included): tests use it to prove a no-op pass writes nothing.
    """

    def __init__(
        self,
        configuration: k8s.Configuration | ConfigSource,
        settings: ClientSettings | None = None,
        *,
        name: str = "kube",
    ) -> None:
        self._source = (
            configuration
            if isinstance(configuration, ConfigSource)
            else ConfigSource(configuration)
        )
        self.settings = settings or ClientSettings()
        self.name = name
        self._generated = GeneratedClient(
            self._source, connections=self.settings.workers, user_agent=self.settings.user_agent
        )
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix=f"{name}-api"
        )
        self.limiter = TokenBucket(qps=self.settings.qps, burst=self.settings.burst)
        self.requests: Counter[str] = Counter()
        self._streams: set[WatchStream] = set()
        self._transport: LoopTransport | None = None
        self._transport_chosen = False
        self._preparing = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: str | None = None,
        *,
        qps: float = 20.0,
        burst: int = 30,
        context: str | None = None,
        settings: ClientSettings | None = None,
        name: str = "kube",
    ) -> KubeClient:
        """A client for a synchronous composition root: does no I/O here.

        The kubeconfig (in-cluster config when empty) is read by the first
        request, in a worker thread; a bad one makes that request raise
        KubeConfigError. Prefer ``await connect(...)`` to fail at startup.
        """
        source = ConfigSource(lambda: load_kubeconfig(kubeconfig, context))
        base = settings or ClientSettings()
        return cls(source, replace(base, qps=qps, burst=burst), name=name)

    @property
    def server(self) -> str:
        """The API server's URL as the configuration names it ("" until it is loaded)."""
        configuration = self._source.loaded
        return str(configuration.host or "") if configuration is not None else ""

    def sibling(self, name: str, settings: ClientSettings | None = None) -> KubeClient:
        """Another client on the same configuration with its own pool and bucket.

        Leader election uses one (as client-go's does) so that controllers
        saturating their own budget can never delay a lease renewal.
        """
        return KubeClient(self._source, settings or self.settings, name=name)

    @property
    def writes(self) -> int:
        """Requests that may change something (everything but GET)."""
        return sum(n for method, n in self.requests.items() if method != "GET")

    # -- plain requests ---------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = JSON,
        request_timeout: Timeout | None = None,
        retries: int | None = None,
    ) -> JsonObject:
        """Send one request; the decoded JSON body, or ApiError.

        429 and 5xx answers are retried (``retries`` overrides the setting);
        a request that got no answer raises ApiUnavailableError at once. A 401
        makes the credentials be read again (:mod:`credentials`); when they
        changed, the request is sent once more with them (a 401 is refused before
        anything is done, so nothing applies twice).
        """
        if self._closed:
            raise ApiUnavailableError("client closed", method=method, path=path)
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        budget = self.settings.max_retries if retries is None else retries
        backoff = Backoff(base=self.settings.backoff_base, cap=self.settings.backoff_max)
        loop = asyncio.get_running_loop()
        transport = await self._loop_transport(loop)
        timeout = request_timeout or self.settings.timeout
        attempt = 0
        reconnected = False
        reauthenticated = False
        while True:
            await self.limiter.acquire()
            self.requests[method] += 1
            try:
                if transport is None:
                    status, reason, resp_headers, data = await loop.run_in_executor(
                        self._pool,
                        self._generated.send,
                        method,
                        path,
                        query,
                        headers,
                        body,
                        timeout,
                    )
                else:
                    if transport.needs_preparing():
                        async with self._preparing:  # one read for all waiting requests
                            if transport.needs_preparing():
                                await loop.run_in_executor(self._pool, transport.prepare)
                    status, reason, resp_headers, data = await transport.send(
                        method, path, query, headers, body, timeout
                    )
            except aiohttp.ServerDisconnectedError:
                # A kept connection the server had closed (a restart, an idle
                # timeout): urllib3 reconnects once for these; so does this.
                if reconnected:
                    raise ApiUnavailableError(
                        "the server closed the connection", method=method, path=path
                    ) from None
                reconnected = True
                continue
            except NETWORK_ERRORS as err:
                raise ApiUnavailableError(
                    describe_network_error(err), method=method, path=path
                ) from None
            except ValueError:  # "Newline or carriage return character detected in HTTP..."
                raise ApiUnavailableError(
                    describe_network_error(UnsendableRequestError()), method=method, path=path
                ) from None
            if 200 <= status < 300:
                try:
                    if len(data) <= DECODE_ON_LOOP_MAX:
                        return _decode(data)
                    return await loop.run_in_executor(self._pool, _decode, data)
                except (ValueError, RecursionError):  # a 2xx is no excuse to crash
                    raise undecodable_answer(
                        status, resp_headers, data, method=method, path=path
                    ) from None
            changed = status == 401 and await self._reread_credentials(loop, transport)
            if changed and not reauthenticated:
                reauthenticated = True
                continue
            error = ApiError.from_response(
                status, reason, data, method=method, path=path, headers=resp_headers
            )
            if not error.retryable or attempt >= budget:
                raise error
            attempt += 1
            delay = error.retry_after if error.retry_after is not None else backoff.next()
            logger.warning(
                "kube {} {}: {} {}, retrying in {:.2f}s ({}/{})",
                method,
                path,
                status,
                error.reason,
                delay,
                attempt,
                budget,
            )
            await asyncio.sleep(delay)

    async def _reread_credentials(
        self, loop: asyncio.AbstractEventLoop, transport: LoopTransport | None
    ) -> bool:
        """After a 401: read the credentials again (a rotated token file, a plugin run
        again); True when the loop transport now sends other ones."""
        invalidate(self._source.loaded)
        if transport is None:
            return False  # the generated client asks for them at every request
        before = transport.authorization
        transport.forget_credentials()
        async with self._preparing:
            if transport.needs_preparing():
                await loop.run_in_executor(self._pool, transport.prepare)
        return transport.authorization != before

    async def _loop_transport(self, loop: asyncio.AbstractEventLoop) -> LoopTransport | None:
        """The aiohttp transport, made on the first request (the configuration may
        be read then, in a thread); None: requests go the urllib3 way."""
        if not self._transport_chosen:
            configuration = await loop.run_in_executor(self._pool, self._source.get)
            if self._transport_chosen:  # another request chose meanwhile
                return self._transport
            if self.settings.loop_transport and supported(configuration):
                self._transport = LoopTransport(
                    configuration,
                    connections=self.settings.workers,
                    user_agent=self.settings.user_agent,
                )
            self._transport_chosen = True
        return self._transport

    # -- watches ----------------------------------------------------------
    async def watch(self, path: str, *, query: Query, request_timeout: Timeout) -> WatchStream:
        """Open a watch (``query`` must include ``watch=1``); read it with ``next_event``."""
        if self._closed:
            raise ApiUnavailableError("client closed", method="WATCH", path=path)
        await self.limiter.acquire()
        self.requests["WATCH"] += 1
        stream = WatchStream(
            path, open_response=self._generated.open, on_close=self._forget, name=self.name
        )
        self._streams.add(stream)
        try:
            await stream.open(query, request_timeout)
        except BaseException:
            self._streams.discard(stream)
            await stream.aclose()
            raise
        return stream

    def _forget(self, stream: WatchStream) -> None:
        self._streams.discard(stream)

    # -- lifecycle --------------------------------------------------------
    async def aclose(self) -> None:
        """Close every watch, wait for in-flight requests, close the connections."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.aclose()
        if self._transport is not None:
            await self._transport.aclose()

        def shutdown() -> None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._generated.close()

        await run_in_thread(shutdown, name=f"{self.name}-close")

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _decode(data: bytes) -> JsonObject:
    if not data:
        return {}
    value = jsonwire.loads(data)
    return value if isinstance(value, dict) else {"items": value}
