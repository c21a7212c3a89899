"""Events kept in a list."""

from __future__ import annotations

from dataclasses import dataclass

from domain.model import EventType, Node


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    node: str
    type: EventType
    reason: str
    message: str
    source: str


class InMemoryEventRecorder:
    """Implements the EventRecorder port; ``events`` lists what was recorded."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    async def record(
        self, *, node: Node, type: EventType, reason: str, message: str, source: str
    ) -> None:
        self.events.append(RecordedEvent(node.name, type, reason, message, source))

    def reasons(self, node: str | None = None) -> list[str]:
        return [e.reason for e in self.events if node is None or e.node == node]
