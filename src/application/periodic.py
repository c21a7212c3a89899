"""``wait.Until`` on the Clock port: run now, then every period, forever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from domain.ports import Clock

log = logging.getLogger(__name__)


async def run_every(
    clock: Clock,
    period: float,
    work: Callable[[], Awaitable[object]],
    *,
    name: str,
    aligned: bool = False,
) -> None:
    """Call ``work`` immediately and then ``period`` seconds after each call ends.

    ``aligned``: ``period`` seconds after each call *started* instead (at once
    if it took longer), so two loops started together stay together and can
    share what they read (the label and address passes share one snapshot).
    An exception is logged and the loop goes on: a periodic sync is the
    safety net and must survive whatever one pass hits.
    """
    while True:
        started = clock.monotonic()
        try:
            await work()
        except Exception:
            log.exception("%s: periodic pass failed", name)
        wait = period - (clock.monotonic() - started) if aligned else period
        await clock.sleep(max(0.0, wait))
