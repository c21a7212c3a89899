"""Waiting for a real server's eventual consistency (watch events arrive when they do)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


async def until(check: Callable[[], object], *, within: float = 10.0, every: float = 0.02) -> None:
    """Return as soon as ``check()`` (or what it returns, awaited when awaitable) is
    truthy; TimeoutError after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            outcome = check()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            await asyncio.sleep(every)
