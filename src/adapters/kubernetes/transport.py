"""Requests and watch streams to the API server, sent from the event loop.

Requests and watches (a GET whose answer is read line by line as it arrives:
:mod:`watch`) go over the CCM's own kept connections (:mod:`direct`): a quarter
of the CCM's CPU at QPS 500 was aiohttp's client machinery. Through an HTTP(S)
proxy named in the kubeconfig they go through one aiohttp session per client,
which follows proxies (and already serves /metrics here).

What an :class:`~adapters.kubernetes.configuration.ApiConfig` says is honoured:
the host, TLS verification and its CA, a client certificate, ``tls-server-name``,
an HTTP(S) proxy with its headers. Building the TLS context and reading the
credentials may block (files, plugins): :meth:`LoopTransport.prepare` does it and
runs in the client's thread pool; sending only touches the loop.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from adapters import jsonwire
from adapters.kubernetes.configuration import ApiConfig
from adapters.kubernetes.direct import DirectConnections
from adapters.kubernetes.wire import Answer, Query, StreamedAnswer, Timeout

#: How long the credentials header is reused before it is asked again (a changed
#: token file is read then, a plugin refreshed; blocking work done in a thread). A
#: 401 asks at once.
CREDENTIALS_TTL = 5.0


def tls_context(config: ApiConfig) -> ssl.SSLContext | None:
    """Blocking (reads the CA and key files): the client TLS context, None for http://."""
    if not config.https:
        return None
    if not config.verify:  # no CA store to load: nothing is verified
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.ca_file or config.ca_data:
        context = ssl.create_default_context(cafile=config.ca_file, cadata=config.ca_data)
    else:
        context = ssl.create_default_context()
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


class LoopTransport:
    """One aiohttp session (made on first use, in the running loop) for one client."""

    def __init__(self, config: ApiConfig, *, connections: int, user_agent: str) -> None:
        self._config = config
        self._connections = connections
        self._user_agent = user_agent
        self._host = config.host
        self._tls: ssl.SSLContext | None = None
        self._prepared = False
        self._headers: dict[str, str] = {"User-Agent": user_agent}
        self._credentials_at = float("-inf")
        self._session: aiohttp.ClientSession | None = None
        self._direct: DirectConnections | None = None

    def needs_preparing(self) -> bool:
        """True when ``prepare`` must run (in a thread) before the next request."""
        return not self._prepared or time.monotonic() - self._credentials_at > CREDENTIALS_TTL

    def prepare(self) -> None:
        """Blocking: build the TLS context once, and (re)read the credentials."""
        if not self._prepared:
            self._tls = tls_context(self._config)
        headers = {"User-Agent": self._user_agent}
        authorization = self._config.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        self._headers = headers
        self._credentials_at = time.monotonic()
        self._prepared = True

    @property
    def authorization(self) -> str | None:
        """The Authorization header requests carry now (None without credentials)."""
        return self._headers.get("Authorization")

    def forget_credentials(self) -> None:
        """After a 401: the credentials are read again before the next request."""
        self._config.credentials.invalidate()
        self._credentials_at = float("-inf")

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._connections,
                ssl=self._tls if self._tls is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    async def send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: Any,
        request_timeout: Timeout,
    ) -> Answer:
        """One request; its answer whatever the status. Raises aiohttp's errors,
        TimeoutError, OSError, or ValueError when a header cannot be sent."""
        data = None if body is None else jsonwire.dumps(body)
        if not self._config.proxy:
            return await self._direct_connections().send(
                method, path, query, {**self._headers, **headers}, data, request_timeout
            )
        async with self._request(method, path, query, headers, data, request_timeout) as answer:
            content = await answer.read()
            # The headers as received (read-only, still valid once the connection is
            # back in the pool): only a failed answer's are read.
            return answer.status, answer.reason or "", answer.headers, content

    @property
    def kept_connections(self) -> int:
        """How many of its own connections wait for the next requests (0 through a
        proxy)."""
        return self._direct.kept if self._direct is not None else 0

    async def open_kept(self, count: int, *, within: float) -> int:
        """Open up to ``count`` connections now, kept for the next requests; the
        number opened (none through a proxy: aiohttp's pool opens its own)."""
        if self._config.proxy:
            return 0
        return await self._direct_connections().open_kept(count, within=within)

    def _direct_connections(self) -> DirectConnections:
        if self._direct is None:
            self._direct = DirectConnections(
                self._host,
                tls=self._tls,
                server_name=self._config.server_name,
                limit=self._connections,
            )
        return self._direct

    async def open_stream(
        self, path: str, query: Query, headers: Mapping[str, str], request_timeout: Timeout
    ) -> StreamedAnswer:
        """A GET whose answer is read as it arrives (a watch): the caller reads and
        closes it. Raises what :meth:`send` raises."""
        if not self._config.proxy:
            return await self._direct_connections().open_stream(
                path, query, {**self._headers, **headers}, request_timeout
            )
        response: aiohttp.ClientResponse = await self._request(
            "GET", path, query, headers, None, request_timeout
        )
        return _ProxiedStream(response)

    def _request(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        data: bytes | None,
        request_timeout: Timeout,
    ) -> Any:
        return self._open_session().request(
            method,
            self._host + path,
            params=list(query) or None,
            data=data,
            headers={**self._headers, **headers},
            timeout=_client_timeout(request_timeout),
            proxy=self._config.proxy,
            proxy_headers=self._config.proxy_headers,
            server_hostname=self._config.server_name,
            allow_redirects=False,
        )

    async def aclose(self) -> None:
        if self._direct is not None:
            await self._direct.aclose()  # kept (closed): a later request is refused
        if self._session is not None:
            await self._session.close()
            self._session = None


class _ProxiedStream:
    """An aiohttp answer read as it arrives (a watch through a proxy)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.reason = response.reason or ""
        self.headers: Mapping[str, str] = response.headers

    async def readany(self) -> bytes:
        return await self._response.content.readany()

    async def read(self) -> bytes:
        return await self._response.read()

    def close(self) -> None:
        self._response.close()


def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    """A number bounds the whole request; a pair bounds the connection and each read
    (a watch waits for its next event at most that long)."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
    return aiohttp.ClientTimeout(total=timeout)
