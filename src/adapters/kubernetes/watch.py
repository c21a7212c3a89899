"""One open watch: newline-delimited JSON events read on the loop as they arrive.

A :class:`WatchStream` wraps the streamed answer ``KubeClient.watch`` opened (on a
connection of its own, :mod:`direct`, or through aiohttp when a proxy is in the
way). Lines are cut from the chunks as they come, without a line-length limit of
the HTTP library's (a Node with many images is a long line), but with one of ours:
an event longer than ``max_event`` bytes is refused rather than buffered without end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from adapters import jsonwire
from adapters.kubernetes.errors import (
    NETWORK_ERRORS,
    ApiError,
    ApiUnavailableError,
    describe_network_error,
)
from adapters.kubernetes.wire import JsonObject, StreamedAnswer

#: The longest watch event accepted (bytes): far above any Node, a bound on memory.
MAX_EVENT = 16 * 1024 * 1024


class WatchStream:
    """One open watch, read with :meth:`next_event`; :meth:`aclose` releases it."""

    def __init__(
        self,
        path: str,
        response: StreamedAnswer,
        *,
        on_close: Callable[[WatchStream], None],
        max_event: int = MAX_EVENT,
    ) -> None:
        self.path = path
        self._response = response
        self._on_close = on_close
        self._max_event = max_event
        self._buffer = bytearray()
        self._ended = False
        self._closed = False

    async def next_event(self) -> JsonObject | None:
        """The next event (``{"type": ..., "object": ...}``), or None when the server ended
        the watch (its timeout) or the stream was closed."""
        if self._closed:
            return None
        try:
            line = await self._readline()
        except NETWORK_ERRORS as err:
            if self._closed:
                return None
            raise ApiUnavailableError(
                describe_network_error(err), method="WATCH", path=self.path
            ) from None
        if line is None:
            return None
        try:
            event = jsonwire.loads(line)
        except (ValueError, RecursionError) as err:
            raise ApiError(0, "BadWatchEvent", str(err), method="WATCH", path=self.path) from None
        if not isinstance(event, dict):
            raise ApiError(
                0,
                "BadWatchEvent",
                "watch event is not a JSON object",
                method="WATCH",
                path=self.path,
            )
        return event

    async def _readline(self) -> bytes | None:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if line.strip():
                    return line
                continue
            if len(self._buffer) > self._max_event:
                raise ApiError(
                    0,
                    "BadWatchEvent",
                    f"a watch event longer than {self._max_event} bytes",
                    method="WATCH",
                    path=self.path,
                )
            if self._ended or self._closed:
                rest = bytes(self._buffer).strip()
                self._buffer.clear()
                return rest or None
            chunk = await self._response.readany()
            if not chunk:
                self._ended = True
            else:
                self._buffer += chunk

    async def aclose(self) -> None:
        """Stop reading and release the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        with contextlib.suppress(Exception):
            self._response.close()
