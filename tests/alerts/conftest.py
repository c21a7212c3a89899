"""Fixtures of the alert and dashboard tests.

``promtool`` is the binary scripts/install-promtool.sh provides (``XOCCM_PROMTOOL``
when set, as scripts/test does), fetched once collection is over so it never
counts against a test's timeout. The scrape test reuses the integration suite's
real etcd + kube-apiserver and its no-leftover check.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import tests.integration.conftest as integration
from tests.integration.conftest import (
    _no_leftovers,
    admin_kubeconfig,
    ccm_processes,
    control_plane,
    kube,
)

from .monitoring import REPO_ROOT

__all__ = ["_no_leftovers", "admin_kubeconfig", "ccm_processes", "control_plane", "kube"]

INSTALL_PROMTOOL = REPO_ROOT / "scripts" / "install-promtool.sh"

_promtool: Path | Exception | None = None


def find_promtool() -> Path:
    override = os.environ.get("XOCCM_PROMTOOL")
    if override:
        return Path(override)
    done = subprocess.run(
        ["bash", str(INSTALL_PROMTOOL)], check=True, capture_output=True, text=True, timeout=3600
    )
    return Path(done.stdout.strip().splitlines()[-1])


def pytest_collection_finish(session: pytest.Session) -> None:
    global _promtool
    here = Path(__file__).parent
    mine = [i for i in session.items if here in Path(str(i.path)).parents]
    if _promtool is None and any("promtool" in getattr(i, "fixturenames", ()) for i in mine):
        try:
            _promtool = find_promtool()
        except Exception as err:  # reported by the fixture, test by test
            _promtool = err
    if any(i.get_closest_marker("integration") for i in mine):
        integration.pytest_collection_finish(session)


@pytest.fixture(scope="session")
def promtool() -> Path:
    found = _promtool if _promtool is not None else find_promtool()
    if isinstance(found, Exception):
        pytest.fail(f"promtool unavailable ({INSTALL_PROMTOOL}): {found}")
    return found
