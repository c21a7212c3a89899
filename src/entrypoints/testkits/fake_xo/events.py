"""The fake XO's server-sent events: connections, subscriptions, frames.

As XO's event service does (``dist/events/event.service.mjs`` and
``event.class.mjs`` of ``@xen-orchestra/rest-api``; ``tests/spec`` states each
fact against those files): a connection gets a random UUID in its ``init``
frame; subscriptions are per collection (any of XO's listener types) with a
field list or ``*`` (re-posting replaces it); a frame carries
``$subscription`` and the object (``pick``-ed when fields are given; a remove
carries the object as it was); an update whose picked fields did not change
is not sent, one of a ``*`` subscription always is; dropping a connection
destroys its subscriptions. Pings come on one fixed cadence for every
connection (XO's single 30 s ``setInterval``), whatever else is sent.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from entrypoints.testkits.fake_xo.objects import pick

#: One queued frame (event name and data), or None: close the stream.
Frame = tuple[str, dict[str, Any]] | None

#: The collections a subscription may name: XO 0.39.0's ``XoListenerType``
#: (``tests/spec`` checks this against the spec of the version in use).
LISTENER_TYPES = frozenset(
    {
        "pool", "VBD", "host", "VIF", "VTPM", "VM-snapshot", "SR", "VM", "VM-template",
        "message", "vgpu", "gpuGroup", "network", "PBD", "PCI", "PGPU", "PIF", "VDI",
        "VDI-snapshot", "VDI-unmanaged", "vgpuType", "VM-controller", "SM", "alarm", "task",
    }
)  # fmt: skip


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
        #: when the first connection opened (XO starts its ping timer then)
        self._ping_epoch: float | None = None

    def configure(
        self, *, ping_interval: float | None = None, compact: bool | None = None
    ) -> dict[str, Any]:
        if ping_interval is not None:
            if ping_interval <= 0:
                raise ValueError("ping_interval must be positive")
            self.ping_interval = float(ping_interval)
            self._ping_epoch = None
        if compact is not None:
            self.compact = bool(compact)
        return {"ping_interval": self.ping_interval, "compact": self.compact}

    def frame(self, event: str, data: Any) -> bytes:
        return encode_frame(event, data, compact=self.compact)

    def open(self) -> Connection:
        conn = Connection(id=str(uuid.uuid4()))
        self.connections[conn.id] = conn
        return conn

    def next_ping(self, now: float) -> float:
        """The loop time of the next ping: one cadence from the first connection on."""
        if self._ping_epoch is None:
            self._ping_epoch = now
        ticks = math.floor((now - self._ping_epoch) / self.ping_interval) + 1
        return self._ping_epoch + ticks * self.ping_interval

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
        """Add or replace a subscription (``fields`` None: ``*``); False: no such connection."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return False
        conn.subscriptions[collection] = list(fields) if fields is not None else None
        return True

    def unsubscribe(self, conn_id: str, collection: str) -> bool:
        """False only for an unknown connection: XO ignores an absent subscription."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return False
        conn.subscriptions.pop(collection, None)
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
                if fields is not None and _view(before, fields) == data:
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
