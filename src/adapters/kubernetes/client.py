"""The Kubernetes API client: kept connections for requests and watches.

The kubernetes package loads kubeconfigs, in-cluster service accounts, exec plugins
and keeps credentials current (:mod:`configuration`, the one module that uses it);
everything sent to the API server goes through one transport per client
(:mod:`transport`: its own kept connections, or aiohttp through a proxy), requests
and watch streams alike, from the event loop. Nothing
here blocks the loop: what may (loading the configuration, TLS files, a credential
refresh, decoding a large answer) runs in this client's own ``ThreadPoolExecutor``
(``workers`` threads), the only threads it has.

Every call passes the client-side token bucket (``--kube-api-qps`` /
``--kube-api-burst``) first, so a throttled caller waits without holding a
thread, and 429/5xx answers are retried with jittered exponential backoff
(``Retry-After`` honoured). Writes are guarded by resourceVersion or uid
preconditions, so a replay after an ambiguous 5xx fails with a conflict at
worst instead of applying twice.

Responses are decoded to plain dicts rather than generated models: a Node is
kilobytes of managedFields and images the CCM never reads, and validating all
that on every watch event is pure cost. Adapters convert the few fields they
need into domain values.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

from adapters import jsonwire
from adapters.kubernetes import configuration
from adapters.kubernetes.configuration import ApiConfig
from adapters.kubernetes.direct import ServerDisconnectedError
from adapters.kubernetes.errors import (
    NETWORK_ERRORS,
    ApiError,
    ApiUnavailableError,
    UnsendableRequestError,
    describe_network_error,
    undecodable_answer,
)
from adapters.kubernetes.fence import LeadershipFence
from adapters.kubernetes.ratelimit import Backoff, TokenBucket
from adapters.kubernetes.transport import LoopTransport
from adapters.kubernetes.watch import WatchStream
from adapters.kubernetes.wire import JSON, JsonObject, Query, Timeout

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
#: Answers larger than this are decoded in a pool thread, not on the loop (a page
#: of a 5,000-Node list is megabytes of JSON).
DECODE_ON_LOOP_MAX = 256 * 1024
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


#: client-go's ``code`` label for a request that got no answer.
NO_ANSWER = "<error>"


class KubeRequestObserver(Protocol):
    """Hears of every attempt to reach the API server (requests and watch openings),
    as client-go's request metrics do; the composition root picks who (the adapter
    imports no metrics library)."""

    def observe_kube_request(
        self, *, host: str, method: str, code: str, seconds: float, waited: float
    ) -> None:
        """``code`` the HTTP status (``NO_ANSWER`` when none came); ``seconds`` from
        sending to the answer; ``waited`` in the client's token bucket before it."""
        ...


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How one client talks to the API server.

    ``qps``/``burst`` are the client-side token bucket; the CCM's come from
    ``--kube-api-qps``/``--kube-api-burst`` (whose defaults are written once, in the
    flag table), and a client given none is not throttled (``qps`` 0). ``workers``
    bounds concurrent requests (connections kept, and threads for what may block).
    ``max_retries`` applies to 429 and 5xx answers only.
    """

    qps: float = 0.0
    burst: int = 1
    workers: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 10.0
    user_agent: str = "xenorchestra-cloud-controller-manager"

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


class _Source:
    """A client's configuration: given, or loaded once (in a pool thread) on first use;
    a client and its siblings share it."""

    def __init__(self, value: ApiConfig | Callable[[], ApiConfig]) -> None:
        self.value = value if isinstance(value, ApiConfig) else None
        self._loader = None if isinstance(value, ApiConfig) else value
        self._loading: asyncio.Future[ApiConfig] | None = None

    async def get(self, pool: ThreadPoolExecutor) -> ApiConfig:
        if self.value is not None:
            return self.value
        if self._loading is None:
            assert self._loader is not None
            self._loading = asyncio.ensure_future(
                asyncio.get_running_loop().run_in_executor(pool, self._loader)
            )
        try:
            self.value = await asyncio.shield(self._loading)
        finally:
            if self._loading.done() and self._loading.exception() is not None:
                self._loading = None  # a failed load is tried again
        return self.value


async def connect(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    settings: ClientSettings | None = None,
    name: str = "kube",
    master: str | None = None,
    observer: KubeRequestObserver | None = None,
    fence: LeadershipFence | None = None,
) -> KubeClient:
    """A client whose configuration is loaded now (so a bad kubeconfig, or one this
    CCM cannot follow, fails here with KubeConfigError); ``settings`` carries its
    request budget (``qps``, ``burst``) with the rest of how it talks."""
    client = KubeClient(
        lambda: configuration.load(kubeconfig, context, master),
        settings,
        name=name,
        observer=observer,
        fence=fence,
    )
    try:
        await client.load()
    except BaseException:
        await client.aclose()
        raise
    return client


class KubeClient:
    """One transport, one bounded thread pool, one token bucket.

    ``request`` is the only way requests are made (watches: ``watch``), so
    rate limiting, retries, timeouts, error decoding and request counting
    apply to all of them. ``requests`` counts requests sent, per HTTP method
    (retries included): tests use it to prove a no-op pass writes nothing.
    ``fence`` (the controllers' client, with leader election) is asked just before
    anything but a GET is sent (:mod:`fence`).
    """

    def __init__(
        self,
        config: ApiConfig | Callable[[], ApiConfig] | _Source,
        settings: ClientSettings | None = None,
        *,
        name: str = "kube",
        observer: KubeRequestObserver | None = None,
        fence: LeadershipFence | None = None,
    ) -> None:
        self._source = config if isinstance(config, _Source) else _Source(config)
        self.settings = settings or ClientSettings()
        self.name = name
        self.observer = observer
        self.fence = fence
        self._host = ""
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix=f"{name}-api"
        )
        self.limiter = TokenBucket(qps=self.settings.qps, burst=self.settings.burst)
        self.requests: Counter[str] = Counter()
        self._streams: set[WatchStream] = set()
        self._transport: LoopTransport | None = None
        self._preparing = asyncio.Lock()
        self._closed = False

    async def load(self) -> ApiConfig:
        """The configuration, loaded now if it was not (KubeConfigError when unusable)."""
        return await self._source.get(self._pool)

    async def warm(self, *, connections: int = 0) -> int:
        """Do now what the first requests would do first: load the configuration,
        build the TLS context, read the credentials, and open up to ``connections``
        kept connections (``workers`` at most), so the first nodes pay none of it.
        The number of connections opened; ApiUnavailableError when none could be."""
        transport = await self._loop_transport()
        await self._prepare(transport)
        if connections <= 0:
            return 0
        try:
            return await transport.open_kept(connections, within=self.settings.connect_timeout)
        except NETWORK_ERRORS as err:
            raise ApiUnavailableError(
                describe_network_error(err), method="CONNECT", path="/"
            ) from None

    @property
    def kept_connections(self) -> int:
        """How many connections wait for the next requests (:meth:`warm` opens some)."""
        return self._transport.kept_connections if self._transport is not None else 0

    @property
    def server(self) -> str:
        """The API server's URL as the configuration names it ("" until it is loaded)."""
        return self._source.value.host if self._source.value is not None else ""

    def sibling(self, name: str, settings: ClientSettings | None = None) -> KubeClient:
        """Another client on the same configuration with its own pool and bucket, and
        no fence.

        Leader election uses one (as client-go's does) so that controllers
        saturating their own budget can never delay a lease renewal.
        """
        return KubeClient(
            self._source, settings or self.settings, name=name, observer=self.observer
        )

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
        transport = await self._loop_transport()
        timeout = request_timeout or self.settings.timeout
        attempt = 0
        reconnected = False
        reauthenticated = False
        while True:
            queued = loop.time()
            await self.limiter.acquire()
            sent = loop.time()
            try:
                await self._prepare(transport)
                if self.fence is not None and method != "GET":
                    self.fence.check(method, path)  # after every wait: as it leaves
                self.requests[method] += 1
                try:
                    status, reason, resp_headers, data = await transport.send(
                        method, path, query, headers, body, timeout
                    )
                except Exception:
                    self._observe(method, NO_ANSWER, queued, sent)
                    raise
            except (aiohttp.ServerDisconnectedError, ServerDisconnectedError):
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
            self._observe(method, str(status), queued, sent)
            if 200 <= status < 300:
                try:
                    if len(data) <= DECODE_ON_LOOP_MAX:
                        return _decode(data)
                    return await loop.run_in_executor(self._pool, _decode, data)
                except (ValueError, RecursionError):  # a 2xx is no excuse to crash
                    raise undecodable_answer(
                        status, resp_headers, data, method=method, path=path
                    ) from None
            changed = status == 401 and await self._reread_credentials(transport)
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

    def _observe(self, method: str, code: str, queued: float, sent: float) -> None:
        """Report one attempt to the observer, if any (``queued``: before the token
        bucket; ``sent``: after it)."""
        if self.observer is None:
            return
        if not self._host:
            self._host = urlsplit(self.server).netloc
        self.observer.observe_kube_request(
            host=self._host,
            method=method,
            code=code,
            seconds=asyncio.get_running_loop().time() - sent,
            waited=sent - queued,
        )

    async def _prepare(self, transport: LoopTransport) -> None:
        """TLS files and credentials (re)read in the pool when due, once for every
        request waiting on them."""
        if transport.needs_preparing():
            async with self._preparing:
                if transport.needs_preparing():
                    await asyncio.get_running_loop().run_in_executor(self._pool, transport.prepare)

    async def _reread_credentials(self, transport: LoopTransport) -> bool:
        """After a 401: read the credentials again (a rotated token file, a plugin run
        again); True when requests now carry other ones."""
        before = transport.authorization
        transport.forget_credentials()
        await self._prepare(transport)
        return transport.authorization != before

    async def _loop_transport(self) -> LoopTransport:
        """The session's transport, made on the first request (the configuration may
        be loaded then, in the pool)."""
        if self._transport is None:
            config = await self._source.get(self._pool)
            if self._transport is None:  # another request may have made it meanwhile
                self._transport = LoopTransport(
                    config, connections=self.settings.workers, user_agent=self.settings.user_agent
                )
        return self._transport

    # -- watches ----------------------------------------------------------
    async def watch(self, path: str, *, query: Query, request_timeout: Timeout) -> WatchStream:
        """Open a watch (``query`` must include ``watch=1``) on the client's session;
        read it with ``next_event``. A 401 makes the credentials be read again."""
        if self._closed:
            raise ApiUnavailableError("client closed", method="WATCH", path=path)
        loop = asyncio.get_running_loop()
        queued = loop.time()
        await self.limiter.acquire()
        self.requests["WATCH"] += 1
        sent = loop.time()
        transport = await self._loop_transport()
        try:
            await self._prepare(transport)
            try:
                response = await transport.open_stream(
                    path, query, {"Accept": JSON}, request_timeout
                )
            except Exception:
                self._observe("GET", NO_ANSWER, queued, sent)
                raise
            self._observe("GET", str(response.status), queued, sent)
        except NETWORK_ERRORS as err:
            raise ApiUnavailableError(
                describe_network_error(err), method="WATCH", path=path
            ) from None
        except ValueError:  # a header the library will not send: it quotes it, token and all
            raise ApiUnavailableError(
                describe_network_error(UnsendableRequestError()), method="WATCH", path=path
            ) from None
        if response.status != 200:
            try:
                data = await response.read()
            except NETWORK_ERRORS:
                data = b""
            finally:
                response.close()
            if response.status == 401:
                await self._reread_credentials(transport)
            raise ApiError.from_response(
                response.status,
                response.reason or "",
                data,
                method="WATCH",
                path=path,
                headers=response.headers,
            )
        stream = WatchStream(path, response, on_close=self._forget)
        self._streams.add(stream)
        return stream

    def _forget(self, stream: WatchStream) -> None:
        self._streams.discard(stream)

    # -- lifecycle --------------------------------------------------------
    async def aclose(self) -> None:
        """Close every watch, then the connections; the pool stops taking work."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.aclose()
        if self._transport is not None:
            await self._transport.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _decode(data: bytes) -> JsonObject:
    if not data:
        return {}
    value = jsonwire.loads(data)
    return value if isinstance(value, dict) else {"items": value}
