"""Fixtures for the packaging tests.

The tests that talk to an API server reuse the integration suite's real
etcd + kube-apiserver (``control_plane``, ``admin_kubeconfig``, ``kube``,
``service_account``) and its no-leftover check, imported from there so
there is one definition of each. ``helm`` is the binary scripts/install-helm.sh
builds (``XOCCM_HELM`` when set, as scripts/test does).

Slow preparations (the control-plane binaries, helm) happen once collection
is over, before any test starts, so they never count against a test's timeout.
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
    control_plane,
    kube,
    service_account,
)

from .chart import REPO_ROOT

__all__ = ["_no_leftovers", "admin_kubeconfig", "control_plane", "kube", "service_account"]

INSTALL_HELM = REPO_ROOT / "scripts" / "install-helm.sh"

_helm: Path | Exception | None = None


def find_helm() -> Path:
    override = os.environ.get("XOCCM_HELM")
    if override:
        return Path(override)
    done = subprocess.run(
        ["bash", str(INSTALL_HELM)], check=True, capture_output=True, text=True, timeout=3600
    )
    return Path(done.stdout.strip().splitlines()[-1])


def pytest_collection_finish(session: pytest.Session) -> None:
    global _helm
    here = Path(__file__).parent
    mine = [i for i in session.items if here in Path(str(i.path)).parents]
    if _helm is None and any("helm" in getattr(i, "fixturenames", ()) for i in mine):
        try:
            _helm = find_helm()
        except Exception as err:  # reported by the fixture, test by test
            _helm = err
    if any(i.get_closest_marker("integration") for i in mine):
        integration.pytest_collection_finish(session)


@pytest.fixture(scope="session")
def helm() -> Path:
    found = _helm if _helm is not None else find_helm()
    if isinstance(found, Exception):
        pytest.fail(f"helm unavailable ({INSTALL_HELM}): {found}")
    return found
