"""Metrics kept in counters, for tests and embedders without Prometheus."""

from __future__ import annotations

from collections import Counter


class InMemoryMetrics:
    """Implements the Metrics port with plain counters and lists."""

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, str]] = Counter()
        self.depths: dict[str, int] = {}
        self.durations: list[tuple[str, float]] = []
        self.taint_removal_delays: list[float] = []
        self.is_leader = False

    def queue_added(self, *, queue: str) -> None:
        self.counters[("queue_added", queue)] += 1

    def queue_retried(self, *, queue: str) -> None:
        self.counters[("queue_retried", queue)] += 1

    def queue_depth(self, *, queue: str, depth: int) -> None:
        self.depths[queue] = depth

    def queue_work_duration(self, *, queue: str, seconds: float) -> None:
        self.durations.append((queue, seconds))

    def node_synced(self, *, controller: str, result: str) -> None:
        self.counters[(controller, result)] += 1

    def taint_removal_delay(self, *, seconds: float) -> None:
        self.taint_removal_delays.append(seconds)

    def leader(self, *, is_leader: bool) -> None:
        self.is_leader = is_leader
