"""A raw reader of the fake XO's ``/events``: frames as bytes on the wire, timed.

The event facts are about what is sent (frame spelling, headers, order,
cadence), so they read the stream below any SSE library: one ``event:`` line,
one ``data:`` line, a blank line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.xo.support import TOKEN

COOKIE = {"Cookie": f"authenticationToken={TOKEN}"}


@dataclass(frozen=True)
class Frame:
    event: str
    data: Any
    raw: str
    #: the loop time it arrived
    at: float


class EventStream:
    """One open ``GET /events``: its response, its connection id, its frames."""

    def __init__(self, client: httpx.AsyncClient, response: httpx.Response) -> None:
        self.client = client
        self.response = response
        self._lines = response.aiter_lines()
        self.init: Frame | None = None

    @property
    def id(self) -> str:
        assert self.init is not None
        return str(self.init.data["id"])

    async def frame(self, within: float = 5.0) -> Frame:
        """The next frame; TimeoutError if none comes ``within`` seconds."""
        async with asyncio.timeout(within):
            lines: list[str] = []
            while True:
                line = await anext(self._lines)
                if line == "" and lines:
                    break
                if line != "":
                    lines.append(line)
        raw = "\n".join(lines) + "\n\n"
        event = lines[0].removeprefix("event: ")
        data = json.loads(lines[1].removeprefix("data: "))
        return Frame(event, data, raw, asyncio.get_running_loop().time())

    async def next_not_ping(self, within: float = 5.0) -> Frame:
        while True:
            frame = await self.frame(within)
            if frame.event != "ping":
                return frame

    async def subscribe(self, collection: str, fields: Any = None) -> httpx.Response:
        body: dict[str, Any] = {"collection": collection}
        if fields is not None:
            body["fields"] = fields
        return await self.client.post(f"/events/{self.id}/subscriptions", json=body)


@asynccontextmanager
async def open_events(url: str) -> AsyncIterator[EventStream]:
    async with (
        httpx.AsyncClient(base_url=url + "/rest/v0", headers=COOKIE) as client,
        client.stream("GET", "/events") as response,
    ):
        stream = EventStream(client, response)
        stream.init = await stream.frame()
        yield stream
