"""Fixtures for the fault-injection suite.

- ``control_plane`` (session): a :class:`ManagedControlPlane` (the integration
  suite's etcd + kube-apiserver whose apiserver can be restarted alone), shared
  by every test here; the restart test brings it back before it ends;
- ``kube``, ``_no_leftovers``: the integration suite's, imported (one
  definition each);
- ``world``: a fresh :class:`World` (fake XO, two pools, 10 Nodes of which 4 are
  NotReady, an invariant tracker), closed after the test with its CCM
  processes, Nodes and XO server.

Every test here is marked ``integration`` (it needs the control-plane binaries,
looked up once collection is over) and ``reliability``; the longest ones also
``slow`` (deselect them with ``-m "not slow"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import tests.integration.conftest as integration
from adapters.kubernetes import KubeClient
from tests.integration.conftest import _no_leftovers, kube
from tools.bench.plane import ManagedControlPlane

from .world import RESULTS, World

__all__ = ["_no_leftovers", "admin_kubeconfig", "control_plane", "kube", "world"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: fault injection against the CCM process")
    config.addinivalue_line("markers", "slow: a fault test that takes more than ~30 s")


def pytest_collection_finish(session: pytest.Session) -> None:
    here = Path(__file__).parent
    if any(
        here in Path(str(i.path)).parents and i.get_closest_marker("integration")
        for i in session.items
    ):
        integration.pytest_collection_finish(session)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, result in RESULTS.items():
        if "summary" in result:  # a case that is not "a fault, then recovery"
            terminalreporter.write_line(f"reliability: {name}: {result['summary']}")
            continue
        terminalreporter.write_line(
            f"reliability: {name}: work pending during a {result['fault_seconds']:g}s fault done "
            f"{result['recovery_seconds']}s after it cleared (bound {result['bound_seconds']:g}s)"
            + "".join(f"; {k} {v}" for k, v in result.items() if k.startswith("takeover"))
        )


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ManagedControlPlane]:
    found = integration._binaries
    if found is None:
        found = integration.find_binaries()
    if isinstance(found, Exception):
        pytest.fail(f"control-plane binaries unavailable: {found}")
    plane = ManagedControlPlane(found, audit=False)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def admin_kubeconfig(control_plane: ManagedControlPlane) -> Path:
    return control_plane.admin_kubeconfig


@pytest.fixture
async def world(kube: KubeClient, admin_kubeconfig: Path) -> AsyncIterator[World]:
    built = await World.create(kube, admin_kubeconfig)
    try:
        yield built
    finally:
        await built.aclose()
