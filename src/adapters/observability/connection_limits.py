"""The secure port's connection limits (Kubernetes' values by default) and the one
line per interval that says what they closed (see :mod:`connections`).

Never a line per connection: a flood would make the log the next thing to run out.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from dataclasses import dataclass

from loguru import logger

#: What the report counts, in the order it names them.
EVICTED = "closed at the connection limit"
REFUSED = "refused while every connection was busy"
ACCEPT_FAILED = "accepts failed for want of descriptors"
HEADER_TIMEOUT = "closed without request headers in time"
HANDSHAKE_FAILED = "TLS handshakes failed or timed out"
WRITE_TIMEOUT = "closed with an answer unread"
_WARN = (EVICTED, REFUSED, ACCEPT_FAILED)
_ORDER = (EVICTED, REFUSED, ACCEPT_FAILED, HEADER_TIMEOUT, HANDSHAKE_FAILED, WRITE_TIMEOUT)


@dataclass(frozen=True, slots=True)
class Limits:
    """The secure port's limits (:mod:`connections` says what each does);
    Kubernetes' values by default."""

    handshake_timeout: float = 32.0
    header_timeout: float = 32.0
    idle_timeout: float = 90.0
    request_timeout: float = 60.0
    #: Open connections at most; a quarter of the descriptor limit when that is less.
    max_connections: int = 256
    #: TLS handshakes in progress at most (the rest wait in the kernel's backlog).
    max_handshakes: int = 16
    #: A handshake older than this may be closed to make room (healthy ones take ms).
    handshake_patience: float = 1.0
    #: Seconds between two report lines, at most.
    report_every: float = 10.0
    #: How long a closing TLS connection waits for the client's close_notify.
    shutdown_timeout: float = 5.0

    def connection_cap(self) -> int:
        """``max_connections``, or a quarter of the process' descriptors when fewer:
        the rest stays for the controllers (Kubernetes, XO, the log)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(4, min(self.max_connections, soft // 4))


class Report:
    """Counts what happened to connections; one log line per interval at most."""

    def __init__(self, *, every: float, cap: int, limits: Limits) -> None:
        self._every = every
        self._cap = cap
        self._limits = limits
        self._counts: Counter[str] = Counter()
        self._last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None

    def note(self, what: str) -> None:
        self._counts[what] += 1
        if self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._last + self._every
        if loop.time() >= due:
            self.flush()
        else:
            self._pending = loop.call_at(due, self.flush)

    def flush(self) -> None:
        self._pending = None
        if not self._counts:
            return
        self._last = asyncio.get_running_loop().time()
        counts, self._counts = self._counts, Counter()
        parts = ", ".join(f"{counts[key]} {key}" for key in _ORDER if counts[key])
        limits = self._limits
        line = (
            "secure port: {} (limits: {} open connections; request headers within {:g}s, "
            "TLS handshake within {:g}s; next report in {:g}s at the earliest)"
        )
        if any(counts[key] for key in _WARN):
            logger.warning(
                line, parts, self._cap, limits.header_timeout, limits.handshake_timeout, self._every
            )
        else:
            logger.debug(
                line, parts, self._cap, limits.header_timeout, limits.handshake_timeout, self._every
            )

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
