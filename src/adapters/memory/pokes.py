"""The change router's pokes, recorded instead of acted on."""

from __future__ import annotations

import asyncio


class RecordingPokes:
    """Implements ``application.change_router.Pokes``: each poke is kept in order, as
    ``(kind, node name)`` with kind ``changed``, ``removed`` or ``appeared``, and put
    on ``queue`` for a test that waits for one; ``resyncs`` counts stream reconnects
    and ``resync_seen`` is set by the first."""

    def __init__(self) -> None:
        self.poked: list[tuple[str, str]] = []
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.resyncs = 0
        self.resync_seen = asyncio.Event()

    def _poke(self, kind: str, name: str) -> None:
        self.poked.append((kind, name))
        self.queue.put_nowait((kind, name))

    async def vm_changed(self, name: str) -> None:
        self._poke("changed", name)

    async def vm_removed(self, name: str) -> None:
        self._poke("removed", name)

    async def vm_appeared(self, name: str) -> None:
        self._poke("appeared", name)

    def resynced(self) -> None:
        self.resyncs += 1
        self.resync_seen.set()
