"""One open watch: newline-delimited JSON events read off the loop.

A :class:`WatchStream` is opened by ``KubeClient.watch``; it gets the
client's way of opening a response and of forgetting a closed stream as
callables, so it does not depend on the client class.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import urllib3

from adapters import jsonwire
from adapters.kubernetes.errors import (
    NETWORK_ERRORS,
    ApiError,
    ApiUnavailableError,
    describe_network_error,
)
from adapters.kubernetes.wire import JSON, JsonObject, Query, Timeout

#: ``(method, path, query, headers, body, timeout)`` -> the raw response (in a thread).
OpenResponse = Callable[
    [str, str, Query, Mapping[str, str], Any, Timeout], urllib3.BaseHTTPResponse
]


class WatchStream:
    """One open watch: newline-delimited JSON events read by a dedicated thread.

    The thread is this stream's alone, so a watch that waits minutes for an
    event never occupies a worker of the request pool. ``aclose`` shuts the
    socket's read side down, which ends a read blocked in that thread.
    """

    def __init__(
        self,
        path: str,
        *,
        open_response: OpenResponse,
        on_close: Callable[[WatchStream], None],
        name: str = "kube",
    ) -> None:
        self.path = path
        self._open_response = open_response
        self._on_close = on_close
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-watch")
        self._response: urllib3.BaseHTTPResponse | None = None
        self._chunks: Any = None
        self._buffer = bytearray()
        self._closed = False

    async def open(self, query: Query, request_timeout: Timeout) -> None:
        loop = asyncio.get_running_loop()
        try:
            status, reason, headers, data = await loop.run_in_executor(
                self._thread, self._open, query, request_timeout
            )
        except NETWORK_ERRORS as err:
            raise ApiUnavailableError(
                describe_network_error(err), method="WATCH", path=self.path
            ) from None
        if status != 200:
            raise ApiError.from_response(
                status, reason, data, method="WATCH", path=self.path, headers=headers
            )

    def _open(self, query: Query, timeout: Timeout) -> tuple[int, str, dict[str, str], bytes]:
        response = self._open_response("GET", self.path, query, {"Accept": JSON}, None, timeout)
        if response.status != 200:
            try:
                data = response.data or b""
            finally:
                response.release_conn()
            return response.status, response.reason or "", dict(response.headers), data
        self._response = response
        self._chunks = response.stream(None)
        return 200, "", {}, b""

    async def next_event(self) -> JsonObject | None:
        """The next event (``{"type": ..., "object": ...}``), or None when the server ended
        the watch (its timeout) or the stream was closed."""
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        try:
            event = await loop.run_in_executor(self._thread, self._read_event)
        except NETWORK_ERRORS as err:
            if self._closed:
                return None
            raise ApiUnavailableError(
                describe_network_error(err), method="WATCH", path=self.path
            ) from None
        except (ValueError, RecursionError) as err:
            raise ApiError(0, "BadWatchEvent", str(err), method="WATCH", path=self.path) from None
        return event

    def _read_event(self) -> JsonObject | None:
        """Runs in the stream's thread: the next line, decoded."""
        line = self._readline()
        if line is None:
            return None
        event = jsonwire.loads(line)
        if not isinstance(event, dict):
            raise ValueError("watch event is not a JSON object")
        return event

    def _readline(self) -> bytes | None:
        """Runs in the stream's thread."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if line.strip():
                    return line
                continue
            if self._chunks is None or self._closed:
                return None
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._chunks = None
                rest = bytes(self._buffer).strip()
                self._buffer.clear()
                return rest or None

    async def aclose(self) -> None:
        """Stop reading and release the connection and the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        loop = asyncio.get_running_loop()
        closing: Future[None] = self._thread.submit(self._release)
        self._thread.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(closing, loop=loop)

    def _release(self) -> None:
        """Runs in the stream's thread, after any read in progress has returned."""
        response, self._response, self._chunks = self._response, None, None
        if response is not None:
            response.close()
            response.release_conn()
