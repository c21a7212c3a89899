"""A client that floods the secure port the way the security review did, and what
it measures: idle and trickling TLS connections, kept open (reopened when the server
closes them) until stopped; a kubelet-like prober; the CCM process' descriptors,
resident memory and log size read from /proc and its log file.

Test-side only: nothing here is a CCM adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Bytes of a request that never ends: one header line every few seconds.
TRICKLE_START = b"GET /healthz HTTP/1.1\r\nHost: ccm\r\n"


def client_context() -> ssl.SSLContext:
    """The CCM serves a self-signed certificate: not verified here."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def limit_descriptors(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` that gives the child ``limit`` descriptors (soft and hard)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def raise_own_descriptor_limit(wanted: int) -> None:
    """The flooding test process needs a descriptor per connection it holds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


@dataclass
class ProcessFigures:
    """One look at a process: open descriptors and resident memory."""

    descriptors: int
    rss_mib: float

    @classmethod
    def of(cls, pid: int) -> ProcessFigures:
        descriptors = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        rss_kib = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
        return cls(descriptors, rss_kib / 1024)


@dataclass
class Flood:
    """``idle`` connections that finish the TLS handshake and send nothing, and
    ``trickling`` ones that send a request line and then one header line every
    ``trickle_every`` seconds, never the end of the headers. Each is reopened
    ``reopen_after`` seconds after the server closes it, so the pressure lasts until
    :meth:`stop`.

    Like slowloris, the connections are opened one after another (spread over
    ``ramp`` seconds), not in one burst: hundreds of simultaneous new connections
    are a different attack, on the CPU (each TLS handshake is an RSA signature),
    which delays every newcomer, a probe included, behind the others' handshakes."""

    host: str
    port: int
    idle: int
    trickling: int
    trickle_every: float = 5.0
    #: Seconds before a connection the server closed is opened again.
    reopen_after: float = 1.0
    ramp: float = 2.0
    connect_timeout: float = 5.0
    opened: int = 0
    closed_by_server: int = 0
    failed_to_open: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False
    _open_now: int = 0
    peak_open: int = 0

    def start(self) -> None:
        context = client_context()
        kinds = [False] * self.idle + [True] * self.trickling
        step = self.ramp / max(1, len(kinds))
        for i, trickle in enumerate(kinds):
            after = i * step
            self._tasks.append(asyncio.create_task(self._keep(context, trickle, after)))

    async def _keep(self, context: ssl.SSLContext, trickle: bool, after: float) -> None:
        await asyncio.sleep(after)
        while not self._stopping:
            writer: asyncio.StreamWriter | None = None
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        self.host, self.port, ssl=context
                    )
            except (OSError, TimeoutError, ssl.SSLError):
                self.failed_to_open += 1
                if writer is not None:
                    writer.transport.abort()
                await asyncio.sleep(self.reopen_after)
                continue
            self.opened += 1
            self._open_now += 1
            self.peak_open = max(self.peak_open, self._open_now)
            try:
                if trickle:
                    writer.write(TRICKLE_START)
                    n = 0
                    while not reader.at_eof():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.trickle_every):
                                if not await reader.read(4096):
                                    break
                        n += 1
                        writer.write(f"X-Trickle-{n}: {'x' * 8}\r\n".encode())
                        await writer.drain()
                else:
                    while await reader.read(4096):
                        pass
                self.closed_by_server += 1
            except (OSError, ssl.SSLError):
                self.closed_by_server += 1
            finally:
                self._open_now -= 1
                writer.transport.abort()
            await asyncio.sleep(self.reopen_after)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


@dataclass
class Prober:
    """A kubelet liveness probe: a new connection per probe, 1 s timeout, every
    ``every`` seconds; counts answers that were a 200 in time."""

    host: str
    port: int
    path: str = "/healthz"
    every: float = 0.5
    timeout: float = 1.0
    sent: int = 0
    answered: int = 0
    #: Seconds the slowest answered probe took.
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run())

    async def probe(self) -> bool:
        context = client_context()
        writer: asyncio.StreamWriter | None = None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=context)
                writer.write(
                    f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                status = await reader.readline()
            if status.startswith(b"HTTP/1.1 200"):
                self.slowest = max(self.slowest, time.monotonic() - started)
                return True
            self.failures.append(f"{time.strftime('%X')} answered {status[:40]!r}")
            return False
        except (OSError, TimeoutError, ssl.SSLError) as err:
            self.failures.append(f"{time.strftime('%X')} {type(err).__name__}: {err}")
            return False
        finally:
            if writer is not None:
                writer.transport.abort()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            self.sent += 1
            if await self.probe():
                self.answered += 1
            with contextlib.suppress(TimeoutError):
                wait = max(0.0, self.every - (time.monotonic() - started))
                await asyncio.wait_for(self._stopping.wait(), wait)

    async def stop(self) -> None:
        """Stop probing; a probe in flight ends first (its ``timeout`` at most), so
        every probe sent is counted answered or failed, none cut short by the stop."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None
