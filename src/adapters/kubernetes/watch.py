"""One open watch: newline-delimited JSON events read on the loop as they arrive.

A :class:`WatchStream` wraps the streamed answer ``KubeClient.watch`` opened (on a
connection of its own, :mod:`direct`, or through aiohttp when a proxy is in the
way). Lines are cut from the chunks as they come, without a line-length limit of
the HTTP library's (a Node with many images is a long line), but with one of ours:
an event longer than ``max_event`` bytes is refused rather than buffered without end.
"""

from __future__ import annotations

import contextlib
import re
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

#: The head of a Node's MODIFIED event as kube-apiserver writes it (its fields in the
#: order of the Go structs), a Node's name (a DNS subdomain) and uid as they always
#: are; any other spelling does not match and the event is decoded whole.
_MODIFIED_NODE_HEAD = re.compile(
    rb'\{"type":"MODIFIED","object":\{"kind":"Node","apiVersion":"v1",'
    rb'"metadata":\{"name":"([a-z0-9.-]+)","uid":"([0-9a-fA-F-]+)","resourceVersion":"(\d+)"'
)

#: ``known(name, uid, resourceVersion)``: whether the reader holds that version of
#: the object, or a newer one, already.
Known = Callable[[str, str, str], bool]


def modified_node_head(line: bytes) -> tuple[str, str, str] | None:
    """Name, uid and resourceVersion of a Node's MODIFIED event, read from its first
    bytes without decoding the rest; None for any other event or spelling."""
    match = _MODIFIED_NODE_HEAD.match(line)
    if match is None:
        return None
    name, uid, version = match.groups()
    return name.decode("ascii"), uid.decode("ascii"), version.decode("ascii")


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

    async def next_event(self, known: Known | None = None) -> JsonObject | None:
        """The next event (``{"type": ..., "object": ...}``), or None when the server ended
        the watch (its timeout) or the stream was closed.

        ``known``: a Node's MODIFIED event for a version it holds already (the echo of
        the reader's own write, whose answer it took) comes back as the BOOKMARK it
        amounts to, its resourceVersion alone, without decoding the object: two of a
        registered node's three events are such echoes, each a few kilobytes of JSON.
        """
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
        if known is not None and (head := modified_node_head(line)) is not None and known(*head):
            return {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": head[2]}}}
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
