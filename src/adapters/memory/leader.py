"""Leadership granted and revoked by hand (or always held)."""

from __future__ import annotations

import asyncio


class InMemoryLeaderElector:
    """Implements the LeaderElector port.

    ``InMemoryLeaderElector(leading=True)`` leads at once (until revoked).
    Tests call ``grant()`` and ``revoke()`` to drive the gate.
    """

    def __init__(self, *, leading: bool = False) -> None:
        self._leading = asyncio.Event()
        self._lost = asyncio.Event()
        if leading:
            self._leading.set()
        self.released = False

    def grant(self) -> None:
        self._lost.clear()
        self._leading.set()

    def revoke(self) -> None:
        self._leading.clear()
        self._lost.set()

    async def acquire(self) -> None:
        await self._leading.wait()

    async def lost(self) -> None:
        await self._lost.wait()

    async def release(self) -> None:
        self.released = True
        self._leading.clear()
