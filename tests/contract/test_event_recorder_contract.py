"""The EventRecorder port's contract: the in-memory recorder and Kubernetes Events."""

from __future__ import annotations

from domain.model import EventType
from tests.contract.port_drivers import EventLog
from tests.integration.waiting import until

SOURCE = "cloud-node-controller"


async def test_an_event_is_recorded_about_its_node(event_log: EventLog) -> None:
    node = await event_log.node()

    await event_log.recorder.record(
        node=node, type=EventType.NORMAL, reason="Synced", message="Node synced", source=SOURCE
    )

    async def recorded() -> bool:
        return bool(await event_log.about(node))

    await until(recorded)
    assert await event_log.about(node) == [("Normal", "Synced", "Node synced")]


async def test_events_of_different_reasons_are_all_kept(event_log: EventLog) -> None:
    node = await event_log.node()
    other = await event_log.node()

    await event_log.recorder.record(
        node=node, type=EventType.NORMAL, reason="Synced", message="ok", source=SOURCE
    )
    await event_log.recorder.record(
        node=node, type=EventType.WARNING, reason="InvalidVMTag", message="bad", source=SOURCE
    )

    async def both() -> bool:
        return len(await event_log.about(node)) == 2

    await until(both)
    assert sorted(await event_log.about(node)) == [
        ("Normal", "Synced", "ok"),
        ("Warning", "InvalidVMTag", "bad"),
    ]
    assert await event_log.about(other) == []
