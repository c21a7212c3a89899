"""The benchmark code at a tiny size, in the test suite: counts only, never timings.

Each test starts its own control plane (``bench_env``); the binaries are looked
up once collection is over, as the integration suite does, so a cold build
never counts against a test's timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.integration.conftest as integration
from tests.integration.conftest import _no_leftovers

__all__ = ["_no_leftovers", "control_plane_bin"]


def pytest_collection_finish(session: pytest.Session) -> None:
    here = Path(__file__).parent
    if any(
        here in Path(str(i.path)).parents and i.get_closest_marker("integration")
        for i in session.items
    ):
        integration.pytest_collection_finish(session)


@pytest.fixture(scope="session")
def control_plane_bin() -> Path:
    found = integration._binaries
    if found is None:
        found = integration.find_binaries()
    if isinstance(found, Exception):
        pytest.fail(f"control-plane binaries unavailable: {found}")
    return found
