"""The generated client's urllib3 path: the watches, and the requests of a
configuration the loop transport cannot follow (a SOCKS proxy).

It runs in threads (the caller's pool, or a watch's own thread): the generated
``ApiClient`` serializes (credentials, token refresh) and urllib3 sends.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiValueError

from adapters.kubernetes.configuration import ConfigSource
from adapters.kubernetes.errors import UnsendableRequestError
from adapters.kubernetes.transport import Answer, trimmed_authorization
from adapters.kubernetes.wire import Query, Timeout


class GeneratedClient:
    """One generated ``ApiClient`` (one urllib3 pool) for one KubeClient, built on first use."""

    def __init__(self, source: ConfigSource, *, connections: int, user_agent: str) -> None:
        self._source = source
        self._connections = connections
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._api: k8s.ApiClient | None = None

    def api_client(self) -> k8s.ApiClient:
        """Runs in a worker thread: the generated ApiClient, built on first use.

        urllib3 would retry a failed connection three times by default, each
        up to the connect timeout: once is enough to cover a dropped
        keep-alive connection, and keeps a request within its time budget
        (lease renewals depend on it). Retries of answers are ours.

        The connection pool keeps at least one connection per thread: urllib3
        would otherwise close each connection beyond its size (5 per CPU) after
        one request, and a busy pool would pay a TLS handshake per request.
        """
        with self._lock:
            if self._api is None:
                configuration = self._source.get()
                if configuration.retries is None:
                    configuration.retries = urllib3.Retry(
                        total=None, connect=1, read=0, redirect=0, status=0, other=0
                    )
                configuration.connection_pool_maxsize = max(
                    configuration.connection_pool_maxsize or 0, self._connections
                )
                api = k8s.ApiClient(configuration)
                api.user_agent = self._user_agent
                self._api = api
            return self._api

    def send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
    ) -> Answer:
        """Runs in a pool thread, the generated client's way: serialize (auth
        headers, token refresh), send, read."""
        response = self.open(method, path, query, headers, body, timeout)
        try:
            data = response.data or b""
        finally:
            response.release_conn()
        return response.status, response.reason or "", dict(response.headers), data

    def open(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
    ) -> urllib3.BaseHTTPResponse:
        api = self.api_client()
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

    def close(self) -> None:
        """Blocking: close the urllib3 pool, if it was ever made."""
        with self._lock:
            if self._api is not None:
                self._api.close()  # type: ignore[no-untyped-call]


def _trim_authorization(headers: dict[str, str]) -> None:
    """The bearer token without whitespace around it (:func:`trimmed_authorization`)."""
    for key, value in headers.items():
        if key.lower() == "authorization" and value:
            headers[key] = trimmed_authorization(value)
