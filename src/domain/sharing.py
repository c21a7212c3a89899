"""One request that several callers wait for (single flight).

Each caller awaits it through ``asyncio.shield``, so one caller leaving (a
timeout, shutdown) does not cancel it for the others. When every caller left
and the request then fails, its failure is nobody's to report: it was theirs,
and they are gone. Left as is, asyncio would print it at garbage collection as
"Task exception was never retrieved" with a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def shared(request: Awaitable[T]) -> asyncio.Future[T]:
    """``request`` started, for callers that ``await asyncio.shield(...)`` it."""
    future = asyncio.ensure_future(request)
    future.add_done_callback(_heard)
    return future


def _heard(future: asyncio.Future[T]) -> None:
    if not future.cancelled():
        future.exception()
