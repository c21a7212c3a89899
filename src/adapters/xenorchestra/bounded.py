"""XO's answers read with a size limit (``maxResponseBytes``), decoded as they arrive.

httpx reads a whole body into memory, and its gzip decoder expands each chunk
without bound: a 400 MiB list answer took the CCM to 1.77 GiB, and a few hundred
kilobytes of gzip can expand to gigabytes. A CCM should fail that one request, not
the Pod. Here the raw bytes are read as they arrive and decoded here (identity,
gzip, deflate: what the client asks XO for) with zlib's ``max_length``, so no step
produces more than :data:`STEP` bytes, and reading stops as soon as the decoded
answer passes the limit: at most the limit plus one step is ever held.

The limit applies to the decoded size. For the event stream (server-sent events,
open for hours) it applies to each event: bytes since the last blank line. Its
default is the cloud config's (``adapters.config``, where it is justified).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast

import httpx

from adapters import jsonwire
from adapters.config import DEFAULT_MAX_RESPONSE_BYTES
from domain.errors import ProtocolError

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "AnswerTooLarge", "Body", "event_stream", "read_body"]
#: The most decoded bytes one decoding step produces.
STEP = 64 * 1024
#: What the client asks XO for: what :class:`_Decoder` can decode within bounds.
ACCEPT_ENCODING = "gzip, deflate"
_BLANK_LINE = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")


@dataclass(frozen=True, slots=True)
class Body:
    """A 2xx answer's bytes, before decoding: a caller that keeps its last answer tells
    an unchanged collection from a changed one by equality and skips decoding and
    parsing it again (at rest, XO sends the same VM list every time)."""

    content: bytes
    content_type: str

    def json(self, *, endpoint: str) -> Any:
        """The decoded body (None when empty); ProtocolError naming ``endpoint``."""
        if not self.content:
            return None
        try:
            return jsonwire.loads(self.content)
        except (ValueError, RecursionError):
            raise ProtocolError(
                f"Xen Orchestra {endpoint}: the body is not JSON "
                f"({self.content_type}, {len(self.content)} bytes)"
            ) from None


class AnswerTooLarge(ProtocolError):
    """An answer (or one event) larger than ``maxResponseBytes``."""


def size(n: int) -> str:
    """Bytes as the config may spell them: ``32Mi``, ``512Ki``, or a plain count."""
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def too_large(endpoint: str, limit: int, what: str = "answer") -> AnswerTooLarge:
    return AnswerTooLarge(
        f"Xen Orchestra {endpoint}: the {what} is larger than maxResponseBytes "
        f"({size(limit)} bytes); stopped reading it (raise maxResponseBytes in the cloud "
        "config if XO really sends that much)"
    )


class _Decoder:
    """One content coding, decoded lazily in pieces of at most :data:`STEP` bytes: a
    few kilobytes of gzip can stand for gigabytes, and nothing is produced before
    the reader asks for it."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._first = True
        self._zlib: zlib._Decompress | None = None
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj()

    def decode(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for data in pieces:
            yield from self._decode(data)

    def _decode(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            for i in range(0, len(data), STEP):
                yield data[i : i + STEP]
            return
        pending = data
        produced = False
        while pending:
            try:
                piece = self._zlib.decompress(pending, STEP)
            except zlib.error as err:
                if self._coding == "deflate" and self._first and not produced:
                    # Raw deflate without the zlib header, as some servers send (httpx's rule).
                    self._first = False
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    yield from self._decode(data)
                    return
                raise httpx.DecodingError(f"{self._coding}: {err}") from None
            self._first = False
            if piece:
                produced = True
                yield piece
            pending = self._zlib.unconsumed_tail

    def flush(self) -> Iterator[bytes]:
        if self._zlib is None:
            return
        try:
            rest = self._zlib.flush()
        except zlib.error as err:  # pragma: no cover - flush after a clean end
            raise httpx.DecodingError(f"{self._coding}: {err}") from None
        for i in range(0, len(rest), STEP):
            yield rest[i : i + STEP]


def _decoders(response: httpx.Response) -> list[_Decoder]:
    """The codings of ``Content-Encoding``, to undo last first; unknown ones are
    passed through as they are (httpx's rule)."""
    codings = [
        value.strip().lower()
        for value in response.headers.get_list("content-encoding", split_commas=True)
    ]
    known = [c for c in codings if c in ("gzip", "x-gzip", "deflate")]
    return [_Decoder(coding) for coding in reversed(known)]


def _through(pieces: Iterable[bytes], decoders: list[_Decoder]) -> Iterator[bytes]:
    for decoder in decoders:
        pieces = decoder.decode(pieces)
    return iter(pieces)


async def decoded_chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The body of a streamed response, decoded, in chunks of at most :data:`STEP`."""
    decoders = _decoders(response)
    # httpx types it an iterator; it is an async generator, closed here, not by the GC.
    raw_chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
    async with aclosing(raw_chunks) as raws:
        async for raw in raws:
            for chunk in _through([raw], decoders):
                yield chunk
    for i, decoder in enumerate(decoders):
        for chunk in _through(decoder.flush(), decoders[i + 1 :]):
            yield chunk


async def read_body(response: httpx.Response, *, limit: int, endpoint: str) -> bytes:
    """The whole decoded body; AnswerTooLarge as soon as it passes ``limit``."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and not _decoders(response) and int(declared) > limit:
        raise too_large(endpoint, limit)
    parts: list[bytes] = []
    total = 0
    async with aclosing(decoded_chunks(response)) as chunks:
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise too_large(endpoint, limit)
            parts.append(chunk)
    return b"".join(parts)


class _EventBoundedStream(httpx.AsyncByteStream):
    """A streamed response's decoded body, failing once one event (the bytes since
    the last blank line) passes ``limit``."""

    def __init__(self, response: httpx.Response, *, limit: int, endpoint: str) -> None:
        self._response = response
        self._limit = limit
        self._endpoint = endpoint
        self._reading: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._reading = self._read()
        return self._reading

    async def _read(self) -> AsyncGenerator[bytes, None]:
        since = 0
        tail = b""
        async with aclosing(decoded_chunks(self._response)) as chunks:
            async for chunk in chunks:
                window = tail + chunk
                ends = [match.end() for match in _BLANK_LINE.finditer(window)]
                since = len(window) - ends[-1] if ends else since + len(chunk)
                if since > self._limit:
                    raise too_large(self._endpoint, self._limit, "event")
                tail = window[-3:]
                yield chunk

    async def aclose(self) -> None:
        if self._reading is not None:
            await self._reading.aclose()
        await self._response.aclose()


def event_stream(response: httpx.Response, *, limit: int, endpoint: str) -> httpx.Response:
    """The same response, its body decoded here with each event bounded by ``limit``
    (for an SSE reader: the codings are undone, so the headers no longer name them)."""
    headers = [
        (key, value)
        for key, value in response.headers.multi_items()
        if key.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(
        status_code=response.status_code,
        headers=headers,
        stream=_EventBoundedStream(response, limit=limit, endpoint=endpoint),
        request=response.request,
        extensions=response.extensions,
    )
