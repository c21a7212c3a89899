"""The README's demo command, in both XO modes: it must show all three controllers act."""

from __future__ import annotations

import pytest

from entrypoints.demo import run_demo


@pytest.mark.parametrize(
    ("xo", "cluster"),
    [
        pytest.param("memory", "memory", id="all-in-memory"),
        pytest.param("fake-http", "memory", id="fake-xo-over-http"),
        pytest.param("fake-http", "real", id="fake-xo-and-real-kube-apiserver"),
    ],
)
@pytest.mark.timeout(90)
async def test_demo_shows_all_three_controllers(xo: str, cluster: str) -> None:
    lines: list[str] = []
    assert await run_demo(lines.append, xo=xo, cluster=cluster) == 0
    text = "\n".join(lines)
    assert "taints=uninitialized:NoSchedule" in text  # nodes joined tainted
    assert "zone=xcp-paris-2" in text and "original_host_id=" in text  # label sync
    assert "taints=shutdown:NoSchedule" in text  # lifecycle: stopped VM
    assert "worker-3         DELETED" in text  # lifecycle: deleted VM
    for reason in ("Synced", "NodeZoneChanged", "DeletingNode"):
        assert reason in text
    assert "worker-2          NotReady" in text  # the kubectl-style table
    assert lines[-1] == "== demo finished: all three controllers acted"


def _table_row(lines: list[str], name: str) -> str:
    """worker-1's row of the final ``kubectl get nodes`` table."""
    table = lines[lines.index(next(x for x in lines if x.startswith("== kubectl get nodes"))) :]
    return next(line for line in table if line.strip().startswith(name + " "))


@pytest.mark.parametrize("xo", ["memory", "fake-http"])
@pytest.mark.parametrize("run", range(20))
@pytest.mark.timeout(60)
async def test_the_demo_ends_as_its_story_says_every_time(xo: str, run: int) -> None:
    # The story's end, read off its own table and events: worker-1 stays where it
    # migrated to (no label pass may put it back), exactly one NodeZoneChanged.
    lines: list[str] = []
    code = await run_demo(lines.append, xo=xo, cluster="memory")
    text = "\n".join(lines)
    assert "xcp-paris-2" in _table_row(lines, "worker-1"), text
    assert text.count("NodeZoneChanged") == 1, text
    assert code == 0, text
    assert "contradicts" not in text


async def test_the_demo_names_a_contradiction_and_fails() -> None:
    from domain import labels as L
    from domain.model import Node, Taint, TaintEffect
    from entrypoints.demo.story import contradictions
    from entrypoints.demo.world import HOSTS

    def initialized(name: str, **labels: str) -> Node:
        return Node(name=name, labels=labels)

    nodes = {
        "control-plane-1": initialized("control-plane-1"),
        "worker-1": initialized("worker-1", **{L.ZONE: HOSTS[0].id}),  # moved back
        "worker-2": Node(
            name="worker-2", taints=(Taint(L.SHUTDOWN_TAINT.key, TaintEffect.NO_SCHEDULE),)
        ),
    }
    events = [
        ("Warning", "NodeZoneChanged", "worker-1", "old=a, new=b"),
        ("Warning", "NodeZoneChanged", "worker-1", "old=b, new=a"),
    ]
    assert contradictions(nodes, events) == [
        "worker-1's zone is xcp-paris-1, but its VM runs on xcp-paris-2",
        "worker-1's zone changed 2 times; its VM moved once",
    ]
