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
