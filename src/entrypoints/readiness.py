"""Process readiness (``/readyz``): the Node cache synced and Xen Orchestra answering.

What the process needs of its adapters beyond the ports, as small Protocols
instead of ``Any``: the XO adapter proves it is usable (``check``) and closes
(``aclose``); the Node cache says when it has synced. (Node lifecycle, the
deletion of Nodes whose VM is gone, is ``domain.services.lifecycle``.)
"""

from __future__ import annotations

import time
from typing import Protocol

from domain.errors import InventoryError

#: Readiness asks XO at most this often (probes come every few seconds).
XO_READINESS_TTL = 10.0
#: How long the startup check and readiness retry XO before calling it down.
STARTUP_CHECK_DEADLINE = 5.0


class CheckedConnection(Protocol):
    """An adapter with a connection to prove and to close."""

    async def check(self, *, deadline: float | None = None) -> None:
        """Raise InventoryError unless the far end answers and accepts us within ``deadline``."""
        ...

    async def aclose(self) -> None: ...


class SyncedCache(Protocol):
    """A cache filled by list+watch: usable once ``synced``."""

    @property
    def synced(self) -> bool: ...

    async def wait_synced(self) -> None: ...


class Readiness:
    """Ready once the node cache is synced and XO answered recently."""

    def __init__(self, *, nodes: SyncedCache, inventory: CheckedConnection) -> None:
        self._nodes = nodes
        self._inventory = inventory
        self._checked_at = -XO_READINESS_TTL
        self._xo_ok: tuple[bool, str] = (False, "XO not checked yet")

    async def __call__(self) -> tuple[bool, str]:
        if not self._nodes.synced:
            return False, "node cache not synced yet"
        now = time.monotonic()
        if now - self._checked_at >= XO_READINESS_TTL:
            self._checked_at = now
            try:
                await self._inventory.check(deadline=STARTUP_CHECK_DEADLINE)
                self._xo_ok = (True, "ok")
            except InventoryError as err:
                self._xo_ok = (False, f"Xen Orchestra does not answer: {err}")
        return self._xo_ok
