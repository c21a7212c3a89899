"""Who may hold a connection to the secure port, and for how long.

aiohttp serves HTTP well but leaves slow clients alone: a TLS connection that sends
nothing, or one header line now and then, stayed open for an hour, and with enough
of them the process ran out of descriptors. The probes then went unanswered (the Pod
is restarted) and asyncio logged ``socket.accept() out of system resource`` for every
failed accept, hundreds of thousands of lines a minute. This module accepts the
connections itself and gives them the limits of Kubernetes' secure serving
(``k8s.io/apiserver``, ``secure_serving.go``):

- the TLS handshake must finish within ``handshake_timeout`` (Go: the header
  timeout, 32 s);
- the request headers must arrive within ``header_timeout`` (``ReadHeaderTimeout``,
  32 s) of the connection, or of the first byte after an idle spell;
- an idle keep-alive connection is closed after ``idle_timeout`` (``IdleTimeout``,
  90 s; aiohttp's keep-alive timer does it);
- a request, its answer written, gets ``request_timeout`` (the API server's
  ``--request-timeout``, 60 s): a handler still running then answers 504, an answer
  the client does not read closes the connection;
- at most ``max_connections`` are open at once, handshakes included. A new
  connection beyond the cap closes the one that has waited longest without a
  request in progress (handshaking, sending headers, or idle), so a flood of idle
  connections cannot starve a probe that sends its request at once; when every
  connection has a request in progress, accepting pauses (the kernel's backlog holds
  the newcomers) until one ends. An accept that fails for want of descriptors backs
  off as Go's ``http.Server`` does (5 ms doubling to 1 s).

Nothing here logs per connection: what was closed and why is summed up in one line
per ``report_every`` seconds, a warning when the cap or the descriptors ran out,
a debug line for timeouts alone (port scanners and TCP probes make those).

When a burst is over (the open connections back to a few after at least half the
cap), the memory its TLS connections used is handed back to the system
(:mod:`heap`): without it the process stays as large as at the burst's peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from adapters.observability.connection_limits import (
    ACCEPT_FAILED,
    EVICTED,
    HANDSHAKE_FAILED,
    HEADER_TIMEOUT,
    REFUSED,
    WRITE_TIMEOUT,
    Limits,
    Report,
)
from adapters.observability.heap import release_free_memory

#: errno values of an accept that failed for want of resources (Go retries them too).
_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


_HANDSHAKE, _HEADERS, _BUSY, _IDLE = "handshake", "headers", "busy", "idle"


class Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol inside, the guard's state outside.

    Every protocol event is passed on to aiohttp's ``RequestHandler`` (made when the
    connection is established, so a handshake costs no handler); the guard learns
    when request headers start (the first byte after an idle spell) and, from the
    middleware, when a request is in progress and when its answer is written.
    """

    def __init__(self, guard: ConnectionGuard, sock: socket.socket) -> None:
        self._guard = guard
        self.sock = sock
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.state = _HANDSHAKE
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    # -- what the transport says ------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)
        self.inner = self._guard.handler_factory()
        self._guard.established(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.state == _IDLE:
            self._guard.headers_started(self)
        assert self.inner is not None
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        assert self.inner is not None
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        assert self.inner is not None
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        assert self.inner is not None
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    # -- what the guard does ---------------------------------------------------
    def abort(self) -> None:
        """Close at once: no TLS close_notify exchange with a client that stalls.

        During the handshake asyncio owns the socket but has no transport to
        abort yet: shutting the socket down makes the handshake fail at once,
        and asyncio closes it."""
        if self.transport is not None:
            self.transport.abort()
        else:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


class ConnectionGuard:
    """Accepts on a listening socket and serves each connection with
    ``handler_factory`` (aiohttp's ``web.Server``), within :class:`Limits`.

    Two queues decide who is closed to make room, both longest-waiting first:
    established connections without a request in progress, and handshakes that
    have taken longer than ``limits.handshake_patience`` (a client that connected
    and said nothing). At most ``limits.max_handshakes`` handshakes run at once:
    the CPU they cost (an RSA signature each) is what a flood of new connections
    buys, and a probe's own handshake must not wait behind a hundred others; the
    connections not accepted yet wait in the kernel's backlog.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        handler_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None,
        limits: Limits,
    ) -> None:
        self._sock = sock
        self.handler_factory = handler_factory
        self._ssl = ssl_context
        self.limits = limits
        self.cap = limits.connection_cap()
        self.report = Report(every=limits.report_every, cap=self.cap, limits=limits)
        self._open: set[Connection] = set()
        #: Handshakes in progress and when each started, oldest first.
        self._handshaking: dict[Connection, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Established connections without a request in progress, longest waiting first.
        self._waiting: dict[Connection, None] = {}
        self._by_transport: dict[asyncio.BaseTransport, Connection] = {}
        #: Set whenever a slot may have freed.
        self._changed = asyncio.Event()
        self._accepting: asyncio.Task[None] | None = None
        #: Most connections open at once since the memory was last handed back.
        self._high_water = 0
        self._trim: asyncio.TimerHandle | None = None
        #: Times the memory of a burst was handed back (tests read it).
        self.trims = 0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def start(self) -> None:
        self._accepting = asyncio.create_task(self._accept_loop(), name="secure-port-accept")

    async def stop_accepting(self) -> None:
        """Close the listening socket and every connection still in its handshake."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None
        self._sock.close()
        for connection in list(self._handshaking):
            self.forget(connection)
            connection.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop accepting and close every connection left (call it after aiohttp's
        own shutdown answered what was in progress)."""
        await self.stop_accepting()
        for connection in list(self._open):
            self.forget(connection)
            connection.abort()
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        self.report.flush()
        self.report.close()

    # -- accepting -------------------------------------------------------------
    def _stuck_handshake(self, now: float) -> Connection | None:
        for connection, started in self._handshaking.items():
            if now - started >= self.limits.handshake_patience:
                return connection
            return None
        return None

    async def _room(self) -> None:
        """Until a newcomer can be handshaken: a handshake slot free (or one stuck),
        and a connection slot free (or one to close)."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            stuck = self._stuck_handshake(now) is not None
            handshakes_ok = len(self._handshaking) < self.limits.max_handshakes or stuck
            slots_ok = len(self._open) < self.cap or bool(self._waiting) or stuck
            if handshakes_ok and slots_ok:
                return
            self._changed.clear()
            wait: float | None = None
            if self._handshaking:
                oldest = next(iter(self._handshaking.values()))
                wait = max(0.0, oldest + self.limits.handshake_patience - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        while True:
            await self._room()
            try:
                sock, _ = await loop.sock_accept(self._sock)
            except OSError as err:
                if err.errno not in _EXHAUSTED:
                    raise
                self.report.note(ACCEPT_FAILED)
                self._evict(self._waiting_victim() or self._stuck_handshake(loop.time()))
                delay = min(1.0, max(0.005, delay * 2))
                await asyncio.sleep(delay)
                continue
            delay = 0.0
            now = loop.time()
            if len(self._handshaking) >= self.limits.max_handshakes:
                self._evict(self._stuck_handshake(now))
            if len(self._open) >= self.cap:
                self._evict(self._waiting_victim() or self._stuck_handshake(now))
            if len(self._open) >= self.cap or len(self._handshaking) >= self.limits.max_handshakes:
                sock.close()  # the room went while accepting: rare
                self.report.note(REFUSED)
                continue
            self._serve(sock, now)
            await asyncio.sleep(0)  # let the closes and the handshakes run

    def _waiting_victim(self) -> Connection | None:
        return next(iter(self._waiting), None)

    def _evict(self, connection: Connection | None) -> None:
        if connection is None:
            return
        self.report.note(EVICTED)
        self.forget(connection)
        connection.abort()

    def _serve(self, sock: socket.socket, now: float) -> None:
        connection = Connection(self, sock)
        self._open.add(connection)
        self._high_water = max(self._high_water, len(self._open))
        self._handshaking[connection] = now
        task = asyncio.create_task(self._establish(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _establish(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {}
        if self._ssl is not None:
            options = {
                "ssl": self._ssl,
                "ssl_handshake_timeout": self.limits.handshake_timeout,
                "ssl_shutdown_timeout": self.limits.shutdown_timeout,
            }
        # On failure asyncio closes the transport, and the socket with it.
        try:
            await loop.connect_accepted_socket(lambda: connection, connection.sock, **options)
        except (OSError, ssl.SSLError):  # a failed or timed-out handshake
            if not connection.closed:
                self.report.note(HANDSHAKE_FAILED)
            self.forget(connection)

    # -- a connection's life ------------------------------------------------------
    def established(self, connection: Connection) -> None:
        assert connection.transport is not None
        if connection.closed:  # closed to make room during the handshake's last step
            connection.transport.abort()
            return
        self._handshaking.pop(connection, None)
        self._by_transport[connection.transport] = connection
        self._enter(connection, _HEADERS, self.limits.header_timeout, HEADER_TIMEOUT)

    def headers_started(self, connection: Connection) -> None:
        self._enter(connection, _HEADERS, self.limits.header_timeout, HEADER_TIMEOUT)

    def _enter(
        self, connection: Connection, state: str, timeout: float | None, reason: str = ""
    ) -> None:
        if connection.closed:
            return
        connection.state = state
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        self._waiting.pop(connection, None)
        if state != _BUSY:
            self._waiting[connection] = None  # the end of the line
            self._changed.set()
        if timeout is not None:
            connection.timer = asyncio.get_running_loop().call_later(
                timeout, self._expired, connection, reason
            )

    def _expired(self, connection: Connection, reason: str) -> None:
        connection.timer = None
        if connection.closed:
            return
        self.report.note(reason)
        self.forget(connection)
        connection.abort()

    def forget(self, connection: Connection) -> None:
        """The connection is gone (or going): its slot is free."""
        if connection.closed:
            return
        connection.closed = True
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        self._open.discard(connection)
        self._handshaking.pop(connection, None)
        self._waiting.pop(connection, None)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)
        self._changed.set()
        if (
            self._trim is None
            and self._high_water >= self.cap // 2
            and len(self._open) <= max(2, self.cap // 16)
        ):
            self._trim = asyncio.get_running_loop().call_later(1.0, self._burst_over)

    def _burst_over(self) -> None:
        """A second after the connections went back to a few: if they stayed few,
        hand the burst's memory back."""
        self._trim = None
        if len(self._open) > max(2, self.cap // 16):
            return
        self._high_water = len(self._open)
        gc.collect()  # closed TLS transports are cycles: free them first
        if release_free_memory():
            self.trims += 1

    # -- requests (the middleware) -------------------------------------------------
    def request_started(self, transport: asyncio.BaseTransport | None) -> Connection | None:
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is not None:
            self._enter(connection, _BUSY, None)
        return connection

    def request_ended(self, connection: Connection | None) -> None:
        if connection is not None:
            # The answer is written: aiohttp's keep-alive timer closes it if idle.
            self._enter(connection, _IDLE, None)

    def answer_unread(self, connection: Connection | None) -> None:
        if connection is not None and not connection.closed:
            self.report.note(WRITE_TIMEOUT)
            self.forget(connection)
            connection.abort()
