"""Metrics kept in counters, for tests and embedders without Prometheus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime


class InMemoryMetrics:
    """Implements the Metrics port with plain counters and lists."""

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, str]] = Counter()
        self.depths: dict[str, int] = {}
        self.durations: list[tuple[str, float]] = []
        self.waits: list[tuple[str, float]] = []
        #: queue -> what it says of its work in progress (unfinished s, longest s)
        self.in_progress: dict[str, Callable[[], tuple[float, float]]] = {}
        self.controllers: set[str] = set()
        self.taint_removal_delays: list[float] = []
        self.initial_sync_delays: list[float] = []
        self.is_leader = False
        #: controller -> the results it declared
        self.declared_node_syncs: dict[str, tuple[str, ...]] = {}
        #: (count, oldest creation time) as last reported
        self.waiting: tuple[int, datetime | None] = (0, None)
        self.without_provider_id = 0
        self.deletions: Counter[str] = Counter()
        #: (tripped, deletions in window, limit) as last reported
        self.breaker: tuple[bool, int, int] = (False, 0, 0)
        #: XO requests per (endpoint, error or ""), and the event stream's last state
        self.xo_requests: Counter[tuple[str, str]] = Counter()
        self.xo_stream: str | None = None

    def queue_added(self, *, queue: str) -> None:
        self.counters[("queue_added", queue)] += 1

    def queue_retried(self, *, queue: str) -> None:
        self.counters[("queue_retried", queue)] += 1

    def queue_depth(self, *, queue: str, depth: int) -> None:
        self.depths[queue] = depth

    def queue_waited(self, *, queue: str, seconds: float) -> None:
        self.waits.append((queue, seconds))

    def queue_in_progress(self, *, queue: str, probe: Callable[[], tuple[float, float]]) -> None:
        self.in_progress[queue] = probe

    def controllers_running(self, *, names: Sequence[str], running: bool) -> None:
        if running:
            self.controllers.update(names)
        else:
            self.controllers.difference_update(names)

    def queue_work_duration(self, *, queue: str, seconds: float) -> None:
        self.durations.append((queue, seconds))

    def node_synced(self, *, controller: str, result: str) -> None:
        self.counters[(controller, result)] += 1

    def taint_removal_delay(self, *, seconds: float) -> None:
        self.taint_removal_delays.append(seconds)

    def initial_sync_delay(self, *, seconds: float) -> None:
        self.initial_sync_delays.append(seconds)

    def leader(self, *, is_leader: bool) -> None:
        self.is_leader = is_leader

    def declare_node_syncs(self, *, controller: str, results: Sequence[str]) -> None:
        self.declared_node_syncs[controller] = tuple(results)

    def nodes_waiting_initialization(
        self, *, count: int, oldest_created_at: datetime | None
    ) -> None:
        self.waiting = (count, oldest_created_at)

    def nodes_without_provider_id(self, *, count: int) -> None:
        self.without_provider_id = count

    def node_deletion(self, *, outcome: str) -> None:
        self.deletions[outcome] += 1

    def deletion_breaker(self, *, tripped: bool, deletions_in_window: int, limit: int) -> None:
        self.breaker = (tripped, deletions_in_window, limit)

    # -- the XO adapter's observer (the container hands it the metrics) ----------------
    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        self.xo_requests[(endpoint, error or "")] += 1

    def observe_xo_event_stream(
        self, *, state: str | None = None, supported: bool | None = None
    ) -> None:
        if state is not None:
            self.xo_stream = state
