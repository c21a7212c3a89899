"""One pooled HTTP client for the XO REST API, and the mapping of its failures.

Every XO request of the process goes through :class:`XOHttpClient`, so
connection pooling, the concurrency bound, retries, error typing, metrics
and logging are decided in one place. The rules:

- transient failures (connection errors, timeouts, 5xx, 429) are retried
  with exponential backoff and jitter, ``Retry-After`` honoured, under a
  total deadline; nothing else is retried;
- 404 becomes :class:`XONotFound` (the caller decides what absence means);
- 401/403 become AuthenticationError, saying the token must be an admin's; when
  the credentials come from files, they are reread first and the request is sent
  once more if they changed (a rotated token: see ``credentials``);
- a body that is not the JSON XO documents (not JSON, nested past the
  parser's limit, a ``Content-Encoding`` it does not have) becomes
  ProtocolError naming the endpoint; any other failure of the HTTP library
  becomes InventoryError: the adapter never crashes on what a server sends;
- a body (or one event of the stream) larger than ``maxResponseBytes`` is a
  ProtocolError naming the limit, and is not read further (:mod:`bounded`).

No message, log line or repr built here contains a credential: URLs carry
none, and headers are never formatted.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
)

from adapters.xenorchestra import observer as obs
from adapters.xenorchestra.auth import Credentials
from adapters.xenorchestra.bounded import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_BYTES,
    Body,
    event_stream,
    read_body,
)
from adapters.xenorchestra.credentials import CredentialSource
from adapters.xenorchestra.failures import (
    CredentialsRefused,
    TLSError,
    Transient,
    XONotFound,
    XORedirect,
    error_class,
    error_message,
    is_tls_failure,
    library_error,
    retry_after_seconds,
    xo_error,
)
from adapters.xenorchestra.observer import NullObserver, XORequestObserver, safe_observe
from adapters.xenorchestra.policy import RetryPolicy
from domain.errors import InventoryError, UnavailableError

__all__ = [
    "ADMIN_HINT",
    "Body",
    "CredentialsRefused",
    "TLSError",
    "XOHttpClient",
    "XONotFound",
    "XORedirect",
]

T = TypeVar("T")
API_PREFIX = "/rest/v0"
ADMIN_HINT = "the token (or user) must belong to a Xen Orchestra admin"


class XOHttpClient:
    """The XO REST API at ``<url>/rest/v0``: JSON reads with retries, and the event stream."""

    def __init__(
        self,
        *,
        url: str,
        credentials: Credentials | CredentialSource,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrent_requests: int = 16,
        observer: XORequestObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._url = url.rstrip("/")
        self._max_response_bytes = max_response_bytes
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._observer: XORequestObserver = observer or NullObserver()
        self._semaphore = asyncio.Semaphore(max_concurrent_requests)
        # The authenticating header goes with each request: it may change (rotation).
        self._credentials = (
            credentials
            if isinstance(credentials, CredentialSource)
            else CredentialSource.fixed(credentials)
        )
        self._client = httpx.AsyncClient(
            base_url=self._url + API_PREFIX,
            headers={"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING},
            verify=verify,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_concurrent_requests + 2,
                max_keepalive_connections=max_concurrent_requests,
            ),
        )

    def __repr__(self) -> str:
        return f"XOHttpClient(url={self._url!r}, auth={self._credentials.method!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- JSON requests -----------------------------------------------------
    async def get_json(
        self, path: str, *, endpoint: str, params: Mapping[str, str] | None = None
    ) -> Any:
        """GET ``path`` (relative to /rest/v0) and return its decoded JSON body."""
        return await self.request_json("GET", path, endpoint=endpoint, params=params)

    async def get_decoded(
        self,
        path: str,
        *,
        endpoint: str,
        decode: Callable[[Body], T],
        params: Mapping[str, str] | None = None,
    ) -> T:
        """GET ``path`` as :meth:`get_json` does (same retries, same typed errors), the
        2xx body given to ``decode``: a ProtocolError it raises counts as the attempt's."""
        result: T = await self.request_json(
            "GET", path, endpoint=endpoint, params=params, decode=decode
        )
        return result

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        deadline: float | None = None,
        decode: Callable[[Body], Any] | None = None,
    ) -> Any:
        """One logical request: retried while transient, typed errors otherwise; sent
        once more when XO refused the credentials and newer ones were read meanwhile."""
        try:
            return await self._with_retries(method, path, endpoint, params, body, deadline, decode)
        except CredentialsRefused as refused:
            if not await self._credentials.refresh(seen=refused.generation):
                raise
            logger.info(
                "XO refused {} with the former credentials: sent with the new ones", endpoint
            )
        return await self._with_retries(method, path, endpoint, params, body, deadline, decode)

    async def _with_retries(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        body: Any,
        deadline: float | None,
        decode: Callable[[Body], Any] | None,
    ) -> Any:
        limit = self._retry.deadline if deadline is None else deadline
        started = time.monotonic()
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            wait=self._wait,
            stop=stop_before_delay(limit),
            before_sleep=lambda state: self._log_retry(endpoint, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    remaining = limit - (time.monotonic() - started)
                    return await self._attempt(
                        method,
                        path,
                        endpoint=endpoint,
                        params=params,
                        body=body,
                        attempt_timeout=max(0.05, min(self._timeout, remaining)),
                        decode=decode,
                    )
        except Transient as err:
            elapsed = time.monotonic() - started
            raise UnavailableError(
                f"Xen Orchestra {endpoint} failed after {attempts} attempt(s) in "
                f"{elapsed:.1f}s: {err}",
                detail=f"{endpoint}: {err}",
            ) from None
        raise AssertionError("unreachable: tenacity neither returned nor raised")

    def _wait(self, state: RetryCallState) -> float:
        """Backoff before the next attempt; at least the server's Retry-After."""
        r = self._retry
        backoff = min(r.max_backoff, r.initial_backoff * 2.0 ** (state.attempt_number - 1))
        backoff += random.uniform(0, r.jitter * backoff)
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, Transient) and err.retry_after is not None:
            return max(float(err.retry_after), 0.0)
        return backoff

    @staticmethod
    def _log_retry(endpoint: str, state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        logger.debug(
            "XO {} attempt {} failed ({}); retrying in {:.2f}s",
            endpoint,
            state.attempt_number,
            err,
            state.upcoming_sleep,
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None,
        body: Any,
        attempt_timeout: float,
        decode: Callable[[Body], Any] | None = None,
    ) -> Any:
        async with self._semaphore:
            generation, auth = await self._credentials.current()
            started = time.monotonic()
            error: str | None = None
            try:
                logger.trace("XO {} {} params={}", method, path, dict(params or {}))
                response, content = await self._send(
                    method, path, endpoint, params, body, attempt_timeout, auth
                )
                answer = self._interpret(
                    response, content, endpoint=endpoint, generation=generation
                )
                return answer.json(endpoint=endpoint) if decode is None else decode(answer)
            except XORedirect:
                raise  # an answer, not a failure
            except BaseException as err:
                error = error_class(err)
                raise
            finally:
                elapsed = time.monotonic() - started
                safe_observe(self._observer, endpoint=endpoint, seconds=elapsed, error=error)
                logger.trace("XO {} done in {:.3f}s error={}", endpoint, elapsed, error)

    async def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        body: Any,
        attempt_timeout: float,
        auth: Mapping[str, str],
    ) -> tuple[httpx.Response, bytes]:
        """Send, and read the decoded body within ``maxResponseBytes``."""
        try:
            request = self._client.build_request(
                method,
                path,
                params=dict(params) if params else None,
                json=body,
                headers=auth,
                timeout=attempt_timeout,
            )
            response = await self._client.send(request, stream=True)
            try:
                content = await read_body(
                    response, limit=self._max_response_bytes, endpoint=endpoint
                )
            finally:
                await response.aclose()
            return response, content
        except httpx.TimeoutException:
            raise Transient(
                f"timed out after {attempt_timeout:.1f}s", kind=obs.ERROR_TIMEOUT
            ) from None
        except httpx.LocalProtocolError as err:
            raise library_error(endpoint, err) from None  # not transient: it is ours
        except httpx.TransportError as err:
            if is_tls_failure(err):
                raise TLSError(
                    f"Xen Orchestra {endpoint}: TLS handshake with {self._url} failed ({err}); "
                    "set caFile to the CA that signed XO's certificate, or insecure: true "
                    "to skip verification"
                ) from None
            raise Transient(f"{type(err).__name__}: {err}", kind=obs.ERROR_CONNECTION) from None
        except httpx.HTTPError as err:
            raise library_error(endpoint, err) from None

    def _interpret(
        self, response: httpx.Response, content: bytes, *, endpoint: str, generation: int
    ) -> Body:
        """A 2xx body, or raise the typed error for its status (``generation``: of the
        credentials the request carried)."""
        status = response.status_code
        if 200 <= status < 300:
            return Body(
                b"" if status == 204 else content, response.headers.get("content-type", "?")
            )
        location = response.headers.get("location")
        if 300 <= status < 400 and location:
            raise XORedirect(endpoint, status, location)
        text = content.decode(response.encoding or "utf-8", errors="replace")
        message = error_message(text, response.reason_phrase)
        if status == 404:
            raise XONotFound(endpoint, message, xo_error(text))
        if status in (401, 403):
            raise CredentialsRefused(
                f"Xen Orchestra refused {endpoint} ({status} {message}): {ADMIN_HINT}",
                status=status,
                generation=generation,
            )
        if status == 429 or status >= 500:
            raise Transient(
                f"{status} {message}",
                kind=obs.ERROR_RATE_LIMITED if status == 429 else obs.ERROR_5XX,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        raise InventoryError(f"Xen Orchestra {endpoint}: {status} {message}")

    @property
    def observer(self) -> XORequestObserver:
        """Who measures this client's requests (the change stream reports there too)."""
        return self._observer

    # -- the event stream ----------------------------------------------------
    @asynccontextmanager
    async def stream(self, path: str, *, endpoint: str) -> AsyncIterator[httpx.Response]:
        """Open a long-lived GET (server-sent events) without a read timeout.

        Not retried and not bounded by the semaphore (it lives for hours);
        the caller's watchdog replaces the read timeout. A non-2xx status
        raises the same typed errors as :meth:`request_json` (a 5xx is a
        plain InventoryError: the caller reconnects with its own backoff).
        """
        started = time.monotonic()
        timeout = httpx.Timeout(self._timeout, read=None)
        generation, auth = await self._credentials.current()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store", **auth}
        opened = False
        try:
            async with self._client.stream(
                "GET", path, headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 300:
                    content = await read_body(
                        response, limit=self._max_response_bytes, endpoint=endpoint
                    )
                    self._interpret(response, content, endpoint=endpoint, generation=generation)
                opened = True
                safe_observe(
                    self._observer,
                    endpoint=endpoint,
                    seconds=time.monotonic() - started,
                    error=None,
                )
                bounded = event_stream(response, limit=self._max_response_bytes, endpoint=endpoint)
                try:
                    yield bounded
                finally:
                    await bounded.aclose()
        except BaseException as err:
            if not opened:
                safe_observe(
                    self._observer,
                    endpoint=endpoint,
                    seconds=time.monotonic() - started,
                    error=error_class(err)
                    if not isinstance(err, httpx.TransportError)
                    else (obs.ERROR_TLS if is_tls_failure(err) else obs.ERROR_CONNECTION),
                )
            if isinstance(err, CredentialsRefused):
                # Reread now: the caller's reconnection goes out with the new ones.
                await self._credentials.refresh(seen=err.generation)
            if isinstance(err, Transient):
                raise InventoryError(f"Xen Orchestra {endpoint}: {err}") from None
            if isinstance(err, httpx.HTTPError):
                raise library_error(endpoint, err) from None
            raise
