"""API requests counted per endpoint template, as benchmarks read them."""

from __future__ import annotations

from collections import Counter
from typing import Any


class RequestCounter:
    """``GET /vms/{id}``-style counts of every API request (retries included)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, endpoint: str) -> None:
        self.counts[endpoint] += 1

    def snapshot(self) -> dict[str, int]:
        """API requests received per endpoint template."""
        return dict(self.counts)

    def report(self) -> dict[str, Any]:
        return {"counts": self.snapshot(), "total": sum(self.counts.values())}

    def reset(self) -> None:
        self.counts.clear()
