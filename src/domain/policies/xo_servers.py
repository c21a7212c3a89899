"""What XO's connections to its pools (``/servers``) say about its answers.

XO serves a pool's objects from the XAPI event loop it keeps with the pool's
master. When that loop fails, XO drops the pool's objects (a VM of it then
answers 404, as a deleted one does) and the server leaves ``connected``; an XO
that keeps them instead (its ``xapiMarkDisconnectedDelay``) serves the last
ones it had, and sets the server's ``error`` once the pool has gone that long
without news. Either way, a pool's objects are current only while its server is
enabled, ``connected`` and without an error.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.model import XOServer

CONNECTED = "connected"


def lost_servers(servers: Iterable[XOServer]) -> list[str]:
    """The enabled servers XO is not connected to, each named for a log line (a
    disabled one is the operator's choice, not a loss)."""
    return [
        f"{s.label or 'a server'} ({s.status})"
        for s in servers
        if s.enabled and s.status != CONNECTED
    ]


def pool_current(servers: Iterable[XOServer], pool_id: str) -> bool:
    """Whether XO's objects of ``pool_id`` come from an event loop that works now: an
    enabled, connected server of that pool, without an error (a duplicate entry for a
    pool stays disconnected and never names it)."""
    key = pool_id.strip().lower()
    return bool(key) and any(
        s.enabled and s.status == CONNECTED and not s.error and s.pool_id.lower() == key
        for s in servers
    )


def server_problem(servers: Iterable[XOServer], pool_id: str) -> str:
    """Why :func:`pool_current` is False for ``pool_id``, in a few words for a log line."""
    key = pool_id.strip().lower()
    mine = [s for s in servers if s.pool_id.lower() == key and s.enabled]
    if not mine:
        return "XO lists no connected server of that pool (lost, disabled, or not readable)"
    return "; ".join(
        f"server {s.label or '-'} is {s.status}" + (f" ({s.error})" if s.error else "")
        for s in mine
    )
