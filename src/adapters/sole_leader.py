"""Leadership without election, for ``--leader-elect=false``."""

from __future__ import annotations

import asyncio


class SoleLeader:
    """Implements the LeaderElector port for a replica that is alone by decree.

    It leads at once and never loses: ``lost()`` waits forever (until the
    gate cancels it), ``release()`` only records that it was called.
    """

    def __init__(self) -> None:
        self.released = False
        self._never = asyncio.Event()

    async def acquire(self) -> None:
        """Leading from the start: returns at once."""

    async def lost(self) -> None:
        await self._never.wait()

    async def release(self) -> None:
        self.released = True
