"""The README's demo command, in both XO modes: it must show all three controllers act."""

from __future__ import annotations

import pytest

from entrypoints.demo import run_demo


@pytest.mark.parametrize("xo", ["memory", "fake-http"])
async def test_demo_shows_all_three_controllers(xo: str) -> None:
    lines: list[str] = []
    assert await run_demo(lines.append, xo=xo) == 0
    text = "\n".join(lines)
    assert "taints=uninitialized:NoSchedule" in text  # nodes joined tainted
    assert "zone=xcp-paris-2" in text and "original_host_id=" in text  # label sync
    assert "taints=shutdown:NoSchedule" in text  # lifecycle: stopped VM
    assert "worker-3         DELETED" in text  # lifecycle: deleted VM
    for reason in ("Synced", "NodeZoneChanged", "DeletingNode"):
        assert reason in text
    assert lines[-1] == "== demo finished: all three controllers acted"
