"""Client-side rate limiting and retry backoff for Kubernetes API calls.

``--kube-api-qps`` / ``--kube-api-burst`` mean what they mean in client-go:
a token bucket in front of every request, so a burst of work (a thousand
nodes joining) cannot flood the API server and trip its priority-and-fairness
limits. The bucket waits asynchronously: a throttled call occupies no thread.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable


class TokenBucket:
    """``qps`` tokens per second, at most ``burst`` saved up; ``qps <= 0`` is unlimited.

    Callers reserve a token at once (the balance may go negative) and sleep
    until it is theirs, so waiters are served in arrival order without a lock
    and without waking up just to find the token taken by someone else.
    """

    def __init__(
        self, *, qps: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if qps > 0 and burst < 1:
            raise ValueError("burst must be at least 1 when qps is limited")
        self.qps = qps
        self.burst = max(burst, 1)
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    def reserve(self) -> float:
        """Take a token now; return how many seconds to wait before using it."""
        if self.unlimited:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def try_take(self) -> bool:
        """Take a token only if one is available now (for dropping, not waiting)."""
        if self.unlimited:
            return True
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a token (cancellation-safe: a cancelled wait gives nothing back,
        exactly as an abandoned request would have used it)."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


class Backoff:
    """Exponential backoff with full jitter, capped; ``reset`` after a success.

    Jitter keeps a fleet of replicas (or watches) that failed together from
    retrying together.
    """

    def __init__(self, *, base: float, cap: float, factor: float = 2.0) -> None:
        self.base = base
        self.cap = cap
        self.factor = factor
        self._attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * self.factor**self._attempt)
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
