"""Timing knobs of the adapter, with production defaults and test overrides.

They live in plain dataclasses (not the cloud config) because the reference
CCM's config file has no such keys; tests shrink them to milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one XO request: exponential backoff with jitter under a deadline.

    Only transient failures are retried (connection errors, timeouts, 5xx,
    429). ``deadline`` bounds the whole call, waits included, so a sync pass
    never hangs on XO for longer than that.
    """

    deadline: float = 60.0
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    jitter: float = 0.5


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """The change stream: watchdog, reconnection and the polling fallback.

    XO pings every 30 s; ``ping_timeout`` of silence means the stream is
    dead (a proxy may keep a dead TCP connection open forever).
    ``poll_interval`` is used when XO has no events endpoint (older than 5.113).
    """

    ping_timeout: float = 60.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    poll_interval: float = 30.0
    subscribe_deadline: float = 30.0
