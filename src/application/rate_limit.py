"""Kubernetes' default controller rate limiter, on the Clock port.

client-go's ``DefaultControllerRateLimiter`` is the max of a per-item
exponential backoff (5 ms doubling to 1000 s) and an overall token bucket
(10 qps, burst 100): one failing node backs off alone, while a storm of
failures cannot flood XO or the API server.
"""

from __future__ import annotations

from collections.abc import Hashable

from domain.ports import Clock


class ItemExponentialBackoff:
    """``base * 2**failures`` per item, capped at ``cap``; reset by ``forget``."""

    def __init__(self, *, base: float = 0.005, cap: float = 1000.0) -> None:
        self._base = base
        self._cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        n = self._failures.get(item, 0)
        self._failures[item] = n + 1
        # 2**n overflows floats long after the cap; stop computing once capped.
        return self._cap if n >= 64 else min(self._base * 2**n, self._cap)

    def retries(self, item: Hashable) -> int:
        return self._failures.get(item, 0)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)


class TokenBucket:
    """A token bucket that, like ``rate.Limiter.Reserve``, always grants and
    answers how long the caller must wait for its token."""

    def __init__(self, *, clock: Clock, qps: float = 10.0, burst: int = 100) -> None:
        self._clock = clock
        self._qps = qps
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = clock.monotonic()

    def reserve(self) -> float:
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps


class ControllerRateLimiter:
    """The max of the two limiters above."""

    def __init__(
        self,
        *,
        clock: Clock,
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
    ) -> None:
        self._items = ItemExponentialBackoff(base=base_delay, cap=max_delay)
        self._bucket = TokenBucket(clock=clock, qps=qps, burst=burst)

    def when(self, item: Hashable) -> float:
        return max(self._items.when(item), self._bucket.reserve())

    def retries(self, item: Hashable) -> int:
        return self._items.retries(item)

    def forget(self, item: Hashable) -> None:
        self._items.forget(item)
