"""The Kubernetes API client: the official sync client, run off the event loop.

Why the sync client in a bounded thread pool rather than ``kubernetes.aio``:
``kubernetes.aio`` is marked experimental in 37.x and new; the sync client
(urllib3) is what every other Python controller runs in production, its
kubeconfig / in-cluster / token-refresh code is the mature one, and its
failure modes are known. The CCM makes few, small requests (a handful per
node per sync), so a small dedicated pool costs nothing measurable, and it
bounds concurrency on its own. Nothing here blocks the loop:

- every request runs on this client's own ``ThreadPoolExecutor`` (``workers``
  threads) through ``loop.run_in_executor``, never the loop's default one;
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
import json
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiValueError
from loguru import logger

from adapters.kubernetes.configuration import (
    ConfigSource,
    load_configuration,
    load_kubeconfig,
    run_in_thread,
)
from adapters.kubernetes.errors import (
    NETWORK_ERRORS,
    ApiError,
    ApiUnavailableError,
    UnsendableRequestError,
    describe_network_error,
    undecodable_answer,
)
from adapters.kubernetes.ratelimit import Backoff, TokenBucket
from adapters.kubernetes.watch import WatchStream
from adapters.kubernetes.wire import JSON, JsonObject, Query, Timeout

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How one client talks to the API server.

    ``qps``/``burst`` are ``--kube-api-qps``/``--kube-api-burst`` (client-go
    and the reference CCM default to 20/30). ``workers`` bounds concurrent
    requests (watches have their own threads). ``max_retries`` applies to
    429 and 5xx answers only.
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
        self._api_lock = threading.Lock()
        self._api: k8s.ApiClient | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix=f"{name}-api"
        )
        self.limiter = TokenBucket(qps=self.settings.qps, burst=self.settings.burst)
        self.requests: Counter[str] = Counter()
        self._streams: set[WatchStream] = set()
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

    def _api_client(self) -> k8s.ApiClient:
        """Runs in a worker thread: the generated ApiClient, built on first use.

        urllib3 would retry a failed connection three times by default, each
        up to the connect timeout: once is enough to cover a dropped
        keep-alive connection, and keeps a request within its time budget
        (lease renewals depend on it). Retries of answers are ours.

        The connection pool keeps at least one connection per thread: urllib3
        would otherwise close each connection beyond its size (5 per CPU) after
        one request, and a busy pool would pay a TLS handshake per request.
        """
        with self._api_lock:
            if self._api is None:
                configuration = self._source.get()
                if configuration.retries is None:
                    configuration.retries = urllib3.Retry(
                        total=None, connect=1, read=0, redirect=0, status=0, other=0
                    )
                configuration.connection_pool_maxsize = max(
                    configuration.connection_pool_maxsize or 0, self.settings.workers
                )
                api = k8s.ApiClient(configuration)
                api.user_agent = self.settings.user_agent
                self._api = api
            return self._api

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
        a request that got no answer raises ApiUnavailableError at once.
        """
        if self._closed:
            raise ApiUnavailableError("client closed", method=method, path=path)
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        budget = self.settings.max_retries if retries is None else retries
        backoff = Backoff(base=self.settings.backoff_base, cap=self.settings.backoff_max)
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            await self.limiter.acquire()
            self.requests[method] += 1
            try:
                status, reason, resp_headers, data, decoded = await loop.run_in_executor(
                    self._pool,
                    self._send,
                    method,
                    path,
                    query,
                    headers,
                    body,
                    request_timeout or self.settings.timeout,
                )
            except NETWORK_ERRORS as err:
                raise ApiUnavailableError(
                    describe_network_error(err), method=method, path=path
                ) from None
            if decoded is not None:
                return decoded
            if 200 <= status < 300:
                raise undecodable_answer(status, resp_headers, data, method=method, path=path)
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

    def _send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
    ) -> tuple[int, str, dict[str, str], bytes, JsonObject | None]:
        """Runs in a pool thread: serialize (auth headers, token refresh), send, read,
        and decode a successful answer (a large list is too much JSON for the loop)."""
        response = self._open(method, path, query, headers, body, timeout)
        try:
            data = response.data or b""
        finally:
            response.release_conn()
        decoded = None
        if 200 <= response.status < 300:
            try:
                decoded = _decode(data)
            except (ValueError, RecursionError):
                decoded = None  # the caller raises ApiError: a 2xx is no excuse to crash
        return response.status, response.reason or "", dict(response.headers), data, decoded

    def _open(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
    ) -> urllib3.BaseHTTPResponse:
        api = self._api_client()
        method, url, header_params, body, post_params = api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=dict(headers),
            body=body,
            auth_settings=["BearerToken"],
        )
        _trim_authorization(header_params)
        try:
            rest = api.call_api(
                method, url, header_params, body, post_params, _request_timeout=timeout
            )
        except ApiValueError:
            raise
        except ValueError:  # http.client's "Invalid header value b'Bearer <token>\\n'"
            raise UnsendableRequestError() from None
        response: urllib3.BaseHTTPResponse = rest.response
        return response

    # -- watches ----------------------------------------------------------
    async def watch(self, path: str, *, query: Query, request_timeout: Timeout) -> WatchStream:
        """Open a watch (``query`` must include ``watch=1``); read it with ``next_event``."""
        if self._closed:
            raise ApiUnavailableError("client closed", method="WATCH", path=path)
        await self.limiter.acquire()
        self.requests["WATCH"] += 1
        stream = WatchStream(path, open_response=self._open, on_close=self._forget, name=self.name)
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

        def shutdown() -> None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            with self._api_lock:
                if self._api is not None:
                    self._api.close()  # type: ignore[no-untyped-call]

        await run_in_thread(shutdown, name=f"{self.name}-close")

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _trim_authorization(headers: dict[str, str]) -> None:
    """Drop whitespace around the bearer token, as client-go does for token files:
    ``echo tok | base64`` leaves a newline that no server would accept, and the
    kubernetes client keeps it (a file's, a kubeconfig's or a refreshed in-cluster
    token alike). A control character inside is left for the send to refuse."""
    for key, value in headers.items():
        if key.lower() == "authorization" and value:
            scheme, _, credential = value.strip().partition(" ")
            headers[key] = f"{scheme} {credential.strip()}" if credential else scheme


def _decode(data: bytes) -> JsonObject:
    if not data:
        return {}
    value = json.loads(data)
    return value if isinstance(value, dict) else {"items": value}
