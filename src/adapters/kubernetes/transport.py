"""Plain API requests sent from the event loop with aiohttp, configured by the
kubernetes package's ``Configuration``.

Why not the generated client's urllib3 path for them: on the bench machine, a
small PATCH to the real kube-apiserver costs the CCM 770 µs of CPU through that
path (a thread hand-off, the generated client's serialization, http.client's
header parsing through the email package) and 380 µs through aiohttp, whose
HTTP parser is compiled (aiohttp already serves /metrics here). At two writes
and one event per node that is most of a registration's CPU. The kubernetes
package still does what it is there for: kubeconfigs, in-cluster service
accounts, exec plugins and token refresh (its ``Configuration``), and the
watches, each one long-lived stream where per-request cost does not matter.

What a ``Configuration`` says is honoured as urllib3 honours it: ``host``,
``verify_ssl``, ``ssl_ca_cert``/``ca_cert_data``, ``cert_file``/``key_file``,
``tls_server_name``, an HTTP(S) ``proxy`` with ``proxy_headers`` unless
``no_proxy`` matches. A SOCKS proxy or ``assert_hostname`` is not something
aiohttp does: :func:`supported` says so and the client keeps urllib3 then.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes import client as k8s
from kubernetes.client.rest import is_socks_proxy_url, should_bypass_proxies

from adapters import jsonwire
from adapters.kubernetes.wire import Query, Timeout

#: How long the credentials header is reused before the configuration is asked
#: again (its refresh hook, ``credentials.Rotation``, rereads a changed token file
#: or runs a plugin again, blocking work done in a thread). A 401 asks at once.
CREDENTIALS_TTL = 5.0

#: (status, reason, headers, body) of one answer.
Answer = tuple[int, str, dict[str, str], bytes]


def supported(configuration: k8s.Configuration) -> bool:
    """Whether aiohttp can send what this configuration asks for."""
    proxy = _proxy(configuration)
    if proxy is not None and is_socks_proxy_url(proxy):  # type: ignore[no-untyped-call]
        return False
    return configuration.assert_hostname is None


def _proxy(configuration: k8s.Configuration) -> str | None:
    proxy = configuration.proxy
    if not proxy:
        return None
    if should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
        return None
    return str(proxy)


def tls_context(configuration: k8s.Configuration) -> ssl.SSLContext | None:
    """Blocking (reads the CA and key files): the client TLS context, None for http://."""
    if not str(configuration.host or "").startswith("https://"):
        return None
    if not configuration.verify_ssl:  # no CA store to load: nothing is verified
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.ssl_ca_cert or configuration.ca_cert_data:
        context = ssl.create_default_context(
            cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data
        )
    else:
        context = ssl.create_default_context()
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def credentials(configuration: k8s.Configuration, user_agent: str) -> dict[str, str]:
    """Blocking (may refresh the token): the headers every request carries."""
    headers = {"User-Agent": user_agent}
    bearer = configuration.auth_settings().get("BearerToken")
    if bearer and bearer.get("value"):
        headers["Authorization"] = trimmed_authorization(str(bearer["value"]))
    return headers


def trimmed_authorization(value: str) -> str:
    """Whitespace around the bearer token dropped, as client-go does for token files:
    ``echo tok | base64`` leaves a newline that no server would accept, and the
    kubernetes package keeps it (a file's, a kubeconfig's or a refreshed in-cluster
    token alike). A control character inside is left for the send to refuse."""
    scheme, _, credential = value.strip().partition(" ")
    return f"{scheme} {credential.strip()}" if credential else scheme


class LoopTransport:
    """One aiohttp session (made on first use, in the running loop) for one client.

    ``prepare`` does the blocking part (TLS files, credentials) and must run in a
    thread; ``send`` then only touches the loop.
    """

    def __init__(
        self, configuration: k8s.Configuration, *, connections: int, user_agent: str
    ) -> None:
        self._configuration = configuration
        self._connections = connections
        self._user_agent = user_agent
        self._host = str(configuration.host or "").rstrip("/")
        self._proxy = _proxy(configuration)
        self._proxy_headers: Mapping[str, str] | None = configuration.proxy_headers
        self._server_hostname: str | None = configuration.tls_server_name or None
        self._tls: ssl.SSLContext | None = None
        self._prepared = False
        self._credentials: dict[str, str] = {}
        self._credentials_at = float("-inf")
        self._session: aiohttp.ClientSession | None = None

    def needs_preparing(self) -> bool:
        """True when ``prepare`` must run (in a thread) before the next ``send``."""
        return not self._prepared or time.monotonic() - self._credentials_at > CREDENTIALS_TTL

    def prepare(self) -> None:
        """Blocking: build the TLS context once, and (re)read the credentials."""
        if not self._prepared:
            self._tls = tls_context(self._configuration)
        self._credentials = credentials(self._configuration, self._user_agent)
        self._credentials_at = time.monotonic()
        self._prepared = True

    def forget_credentials(self) -> None:
        """After a 401: the next request reads them again (a rotated token)."""
        self._credentials_at = float("-inf")

    @property
    def authorization(self) -> str | None:
        """The Authorization header the requests carry now."""
        return self._credentials.get("Authorization")

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
        session = self._open_session()
        data = None if body is None else jsonwire.dumps(body)
        async with session.request(
            method,
            self._host + path,
            params=list(query) or None,
            data=data,
            headers={**self._credentials, **headers},
            timeout=_client_timeout(request_timeout),
            proxy=self._proxy,
            proxy_headers=self._proxy_headers,
            server_hostname=self._server_hostname,
            allow_redirects=False,
        ) as response:
            content = await response.read()
            answer_headers = {k: v for k, v in response.headers.items()}
            return response.status, response.reason or "", answer_headers, content

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    """urllib3's meaning: a number bounds the whole request; a pair bounds the
    connection and each read."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
    return aiohttp.ClientTimeout(total=timeout)
