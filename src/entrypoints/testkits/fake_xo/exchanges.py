"""Every REST request the fake XO answered, with its answer, for the spec check.

Off by default (benchmarks send thousands of requests); a test turns it on
with :meth:`ExchangeLog.start` and hands :attr:`ExchangeLog.exchanges` to a
checker that holds each request and response to XO's published OpenAPI spec.
Only ``/rest/v0`` requests are kept: ``/_control`` is the fake's own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as it arrived and the answer it got (``body`` None: a stream)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    content_type: str
    body: bytes | None


class ExchangeLog:
    """What was asked and answered while recording."""

    def __init__(self) -> None:
        self.recording = False
        self.exchanges: list[Exchange] = []

    def start(self) -> None:
        self.recording = True

    def record(self, exchange: Exchange) -> None:
        if self.recording:
            self.exchanges.append(exchange)
