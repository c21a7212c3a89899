"""``wait.Until`` on the Clock port: run now, then every period, forever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from domain.ports import Clock

log = logging.getLogger(__name__)


async def run_every(
    clock: Clock, period: float, work: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Call ``work`` immediately and then ``period`` seconds after each call ends.

    An exception is logged and the loop goes on: a periodic sync is the
    safety net and must survive whatever one pass hits.
    """
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s: periodic pass failed", name)
        await clock.sleep(period)
