"""A stand-in API server whose answers a test scripts (a real API server will not
answer 503 on demand), with what it saw: arrival times, credentials, requests in flight."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class StandIn:
    """An HTTP server whose answers the test scripts, one per request."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    seen: list[float] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(time.monotonic())
        self.authorization.append(request.headers.get("Authorization", ""))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        body: dict[str, object]
        if status == 200:
            body = {"kind": "NodeList", "items": [], "metadata": {"resourceVersion": "7"}}
        else:
            body = {
                "kind": "Status",
                "status": "Failure",
                "code": status,
                "reason": "TooManyRequests" if status == 429 else "ServiceUnavailable",
                "message": "try later",
            }
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )
