"""The fake XO's server-sent events: connections, subscriptions, frames.

As in XO: a connection gets an id in its ``init`` frame; subscriptions are
per collection with an optional field list (re-posting replaces it); a
frame carries ``$subscription`` and only the picked fields; an update whose
picked fields did not change is not sent; dropping a connection destroys
its subscriptions. Pings are sent every ``ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.testing.fake_xo.objects import pick

#: One queued frame (event name and data), or None: close the stream.
Frame = tuple[str, dict[str, Any]] | None


@dataclass(slots=True)
class Connection:
    id: str
    #: collection -> picked fields (None: the whole object)
    subscriptions: dict[str, list[str] | None] = field(default_factory=dict)
    queue: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)


class EventHub:
    """Routes state changes to the subscribed connections.

    ``ping_interval`` (XO's 30 s by default) and ``compact`` (older servers'
    ``event:x`` frame spelling) shape what every stream sends.
    """

    def __init__(self, *, ping_interval: float = 30.0, compact: bool = False) -> None:
        self.connections: dict[str, Connection] = {}
        self.ping_interval = ping_interval
        self.compact = compact
        self._seq = itertools.count(1)

    def configure(
        self, *, ping_interval: float | None = None, compact: bool | None = None
    ) -> dict[str, Any]:
        if ping_interval is not None:
            if ping_interval <= 0:
                raise ValueError("ping_interval must be positive")
            self.ping_interval = float(ping_interval)
        if compact is not None:
            self.compact = bool(compact)
        return {"ping_interval": self.ping_interval, "compact": self.compact}

    def frame(self, event: str, data: Any) -> bytes:
        return encode_frame(event, data, compact=self.compact)

    def open(self) -> Connection:
        conn = Connection(id=f"{next(self._seq)}-{secrets.token_hex(4)}")
        self.connections[conn.id] = conn
        return conn

    def close(self, conn_id: str) -> None:
        self.connections.pop(conn_id, None)

    def drop_all(self) -> int:
        """End every stream (as an XO restart or a proxy timeout would)."""
        conns = list(self.connections.values())
        self.connections.clear()
        for conn in conns:
            conn.queue.put_nowait(None)
        return len(conns)

    def subscribe(self, conn_id: str, collection: str, fields: Sequence[str] | None) -> bool:
        conn = self.connections.get(conn_id)
        if conn is None:
            return False
        conn.subscriptions[collection] = list(fields) if fields is not None else None
        return True

    def unsubscribe(self, conn_id: str, collection: str) -> bool:
        conn = self.connections.get(conn_id)
        if conn is None or collection not in conn.subscriptions:
            return False
        del conn.subscriptions[collection]
        return True

    def publish(
        self, kind: str, type_: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        """A state listener: queue ``add``/``update``/``remove`` frames."""
        for conn in self.connections.values():
            if type_ not in conn.subscriptions:
                continue
            fields = conn.subscriptions[type_]
            if kind == "update" and before is not None and after is not None:
                data = _view(after, fields)
                if _view(before, fields) == data:
                    continue
            elif kind == "remove" and before is not None:
                data = _view(before, fields)
            elif after is not None:
                data = _view(after, fields)
            else:
                continue
            conn.queue.put_nowait((kind, {"$subscription": type_, **data}))


def _view(obj: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return pick(obj, fields) if fields is not None else copy.deepcopy(obj)


def encode_frame(event: str, data: Any, *, compact: bool = False) -> bytes:
    """One SSE frame; ``compact`` is the older servers' ``event:x`` spelling."""
    sep = ":" if compact else ": "
    return f"event{sep}{event}\ndata{sep}{json.dumps(data)}\n\n".encode()
