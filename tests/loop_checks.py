"""What the running event loop reports to its exception handler while a test runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def unhandled_by_the_loop() -> Iterator[list[dict[str, Any]]]:
    """The contexts the loop's exception handler got inside the block ("Task exception
    was never retrieved", a failing callback...). asyncio reports an unretrieved
    exception when its task is collected: ``gc.collect()`` before reading the list."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        yield unhandled
    finally:
        loop.set_exception_handler(previous)
