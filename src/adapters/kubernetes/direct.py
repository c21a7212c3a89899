"""Plain requests to the API server over kept HTTP/1.1 connections, without aiohttp.

A request is a request line, a few headers and its JSON body, written here; the
answer is parsed by httptools (llhttp, Node.js's HTTP parser, in C). Measured
against the real API server on the bench machine, a Node PATCH costs the CCM about
130 µs of CPU this way and 290 µs through aiohttp's client, whose request and
response objects, header multidicts, URL parsing and stream readers serve a general
client: at three requests per initialized node that difference was a quarter of
the CCM's CPU at QPS 500. Watches (an answer read line by line as it arrives) and
connections through a proxy stay on aiohttp (:mod:`transport`).

Kept connections are safe because a connection carries one request at a time and
goes back to the pool only once its answer was read whole and the server keeps it
open. A timeout, a cancellation, an error or bytes nobody asked for close it: a
late answer is never read as another request's.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlencode, urlsplit

from httptools.parser.errors import HttpParserError
from httptools.parser.parser import HttpResponseParser

from adapters.kubernetes.wire import Answer, Query, Timeout

#: What may not appear in a request line or header: it would end the line early.
_LINE_BREAKS = ("\r", "\n", "\0")
#: A stream's unread bytes above which the connection stops reading until they are read.
STREAM_BUFFER = 1024 * 1024


class ServerDisconnectedError(ConnectionResetError):
    """The server closed the connection before any byte of the answer (a kept one it
    had closed meanwhile, or a restart): the request may be sent once more."""


class _Connection(asyncio.Protocol):
    """One connection to the server: a request written, its answer parsed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._answer: asyncio.Future[None] | None = None
        self._status = 0
        self._reason = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._received = False
        self._keep_alive = False
        self._complete = False
        self._last_read = 0.0
        self._read_timeout: float | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._streaming = False
        self._buffered = 0
        self._paused = False
        self._error: BaseException | None = None
        #: done once the transport is gone (``connection_lost``)
        self.lost: asyncio.Future[None] = loop.create_future()
        self.open = False

    # -- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is no asyncio.Transport subclass, but is one in all but name
        self._transport = cast(asyncio.Transport, transport)
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.lost.done():
            self.lost.set_result(None)
        if self._received:
            error = exc or ConnectionResetError("the server closed the connection mid-answer")
        else:
            error = ServerDisconnectedError("the server closed the connection")
        self._error = self._error or error
        self._fail(error)

    def data_received(self, data: bytes) -> None:
        if not self._streaming and (self._answer is None or self._answer.done()):
            self.close()  # an answer nobody asked for: the connection cannot be trusted
            return
        self._received = True
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except HttpParserError as err:
            self._error = ConnectionError(f"malformed HTTP answer: {err}")
            self._fail(self._error)
            self.close()

    # -- httptools' callbacks -------------------------------------------------
    def on_message_begin(self) -> None:
        if self._complete:  # a second answer in the bytes of the first: nobody asked for it
            raise ConnectionError("an answer nobody asked for")

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        if self._streaming:
            self._buffered += len(body)
            if self._buffered > STREAM_BUFFER and not self._paused and self._transport:
                self._paused = True
                self._transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()

    # -- one exchange ---------------------------------------------------------
    @property
    def reusable(self) -> bool:
        """True when the last answer was read whole and the server keeps the connection."""
        return self.open and self._keep_alive

    async def exchange(
        self, request: bytes, *, read_timeout: float | None, deadline: float | None
    ) -> Answer:
        """Send ``request`` and wait for its whole answer: at most ``read_timeout``
        seconds without a byte, and never past ``deadline`` (loop time). Raises
        TimeoutError, ServerDisconnectedError or another OSError."""
        self._send(request)
        while not self._complete:
            await self._wait(read_timeout, deadline)
        return self.status, self.reason, self._headers, b"".join(self._body)

    # -- a streamed answer (a watch) ------------------------------------------
    async def start_stream(self, request: bytes, *, read_timeout: float) -> None:
        """Send ``request``; return once its answer's head (status, headers) is read."""
        self._streaming = True
        self._send(request)
        while not self._status:
            await self._wait(read_timeout, None)

    async def read_chunk(self, read_timeout: float) -> bytes:
        """The streamed body's bytes not read yet, waiting at most ``read_timeout``
        seconds for some; b"" once the answer is over."""
        while not self._body:
            if self._complete:
                return b""
            if not self.open:
                raise self._error or ConnectionResetError("the connection was closed")
            await self._wait(read_timeout, None)
        chunk = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body, self._buffered = [], 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    @property
    def status(self) -> int:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason.decode("latin-1")

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    def close(self, *, abort: bool = False) -> None:
        """Close the connection (``abort``: at once, without TLS's closing exchange)."""
        self.open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()

    # -- the answer's waiting -------------------------------------------------
    def _send(self, request: bytes) -> None:
        if self._transport is None or not self.open:
            raise self._error or ServerDisconnectedError("the server closed the connection")
        self._status, self._reason, self._headers, self._body = 0, b"", {}, []
        self._received = self._keep_alive = self._complete = False
        self._transport.write(request)

    async def _wait(self, read_timeout: float | None, deadline: float | None) -> None:
        """Until the parser has news (a head, body bytes, the end), an error, or the
        time is up (TimeoutError; the connection is closed then)."""
        self._answer = self._loop.create_future()
        self._last_read = self._loop.time()
        self._read_timeout, self._deadline = read_timeout, deadline
        self._arm()
        await self._answer

    def _wake(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    def _fail(self, err: BaseException) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(err)

    def _arm(self) -> None:
        """Have the timer fire by the wait's expiry. One timer serves the connection's
        successive waits: it is moved only when a wait must end sooner than it fires
        (a timer per request was 2 % of the CCM's CPU at QPS 500); when it fires early
        for the wait then current, it is armed again for the rest."""
        expiry = self._deadline
        if self._read_timeout is not None:
            idle_expiry = self._last_read + self._read_timeout
            expiry = idle_expiry if expiry is None else min(expiry, idle_expiry)
        if expiry is None:
            return
        if self._timer is not None:
            if self._timer.when() <= expiry:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(expiry, self._expire)

    def _expire(self) -> None:
        """The timer: the answer is late (or, after a read, armed again)."""
        self._timer = None
        if self._answer is None or self._answer.done() or not self.open:
            return
        now = self._loop.time()
        idle_over = self._read_timeout is not None and now - self._last_read >= self._read_timeout
        if idle_over or (self._deadline is not None and now >= self._deadline):
            self._fail(TimeoutError("no answer in time"))
            self.close()
        else:
            self._arm()


class DirectStream:
    """A streamed answer: its status and headers, then its body as it arrives."""

    def __init__(self, connection: _Connection, read_timeout: float) -> None:
        self._connection = connection
        self._read_timeout = read_timeout

    @property
    def status(self) -> int:
        return self._connection.status

    @property
    def reason(self) -> str:
        return self._connection.reason

    @property
    def headers(self) -> Mapping[str, str]:
        return self._connection.headers

    async def readany(self) -> bytes:
        """What arrived since the last read (waiting for something); b"" at the end."""
        return await self._connection.read_chunk(self._read_timeout)

    async def read(self) -> bytes:
        """The rest of the body (an error's Status)."""
        chunks = []
        while chunk := await self.readany():
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._connection.close()


class DirectConnections:
    """Kept connections to one API server, at most ``limit`` at a time."""

    def __init__(
        self,
        url: str,
        *,
        tls: ssl.SSLContext | None,
        server_name: str | None,
        limit: int,
    ) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._authority = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._tls = tls
        self._server_name = (server_name or self._host) if tls is not None else None
        self._limit = max(1, limit)
        self._slots = asyncio.Semaphore(self._limit)
        self._idle: list[_Connection] = []
        #: every open connection, in use or kept, streams too: closed by :meth:`aclose`
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False

    async def send(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: bytes | None,
        request_timeout: Timeout,
    ) -> Answer:
        """One request; its answer whatever the status. Raises ValueError when it
        cannot be written (a line break in a header), TimeoutError, or another OSError
        (ServerDisconnectedError when the server closed the connection unanswered)."""
        request = self._request(method, path, query, headers, body)
        loop = asyncio.get_running_loop()
        self._refuse_when_closed()
        if isinstance(request_timeout, tuple):
            connect_timeout, read_timeout = request_timeout
            deadline = None
        else:
            connect_timeout, read_timeout = request_timeout, None
            deadline = loop.time() + request_timeout
        async with self._slots:
            connection = self._idle_connection() or await self._connect(loop, connect_timeout)
            answered = False
            try:
                answer = await connection.exchange(
                    request, read_timeout=read_timeout, deadline=deadline
                )
                answered = True
            finally:
                if answered and connection.reusable and not self._closed:
                    self._idle.append(connection)
                else:
                    connection.close()
            return answer

    @property
    def kept(self) -> int:
        """How many open connections wait for the next requests."""
        return sum(1 for connection in self._idle if connection.open)

    async def open_kept(self, count: int, *, within: float) -> int:
        """Open connections now until ``count`` are kept (``limit`` at most), so the
        first requests of a burst find them ready (a TLS handshake costs each end
        about 0.4 ms of CPU: paid here, at start, not by the first nodes). The number
        opened; raises the first error when none could be."""
        self._refuse_when_closed()
        loop = asyncio.get_running_loop()
        wanted = min(count, self._limit) - self.kept
        if wanted <= 0:
            return 0
        opened = await asyncio.gather(
            *(self._connect(loop, within) for _ in range(wanted)), return_exceptions=True
        )
        kept = [connection for connection in opened if isinstance(connection, _Connection)]
        self._idle.extend(kept)
        if not kept:
            failure = opened[0]
            assert isinstance(failure, BaseException)
            raise failure
        return len(kept)

    async def open_stream(
        self, path: str, query: Query, headers: Mapping[str, str], request_timeout: Timeout
    ) -> DirectStream:
        """A GET whose answer is read as it arrives (a watch), on a connection of its
        own (not one of the ``limit``: a watch holds it for minutes). Raises what
        :meth:`send` raises."""
        request = self._request("GET", path, query, headers, None)
        self._refuse_when_closed()
        connect_timeout, read_timeout = (
            request_timeout if isinstance(request_timeout, tuple) else (request_timeout,) * 2
        )
        connection = await self._connect(asyncio.get_running_loop(), connect_timeout)
        try:
            await connection.start_stream(request, read_timeout=read_timeout)
        except BaseException:
            connection.close()
            raise
        return DirectStream(connection, read_timeout)

    async def aclose(self) -> None:
        """Close every connection, those in use too (their requests fail), refuse new
        requests, and wait (a second at most) until their sockets are gone: a loop
        closed right after must not leave a TLS shutdown half done."""
        self._closed = True
        self._idle.clear()
        connections = list(self._open)
        for connection in connections:
            connection.close(abort=True)
        pending = [c.lost for c in connections if not c.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _refuse_when_closed(self) -> None:
        if self._closed:
            raise ConnectionAbortedError("the client's connections are closed")

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.open:
                return connection
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, within: float) -> _Connection:
        async with asyncio.timeout(within):
            _, connection = await loop.create_connection(
                lambda: _Connection(loop),
                self._host,
                self._port,
                ssl=self._tls,
                server_hostname=self._server_name,
            )
        if self._closed:  # closed while connecting
            connection.close()
            self._refuse_when_closed()
        self._open.add(connection)
        return connection

    def _request(
        self,
        method: str,
        path: str,
        query: Query,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> bytes:
        target = self._prefix + path
        if query:
            target += "?" + urlencode(list(query))
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        joined = "".join(lines)  # one scan per mark, not one per line and mark
        if " " in target or any(mark in joined for mark in _LINE_BREAKS):
            raise ValueError("Newline or carriage return character detected in HTTP request")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return data + body if body else data
