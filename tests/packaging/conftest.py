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

from pathlib import Path

import pytest

from tests.integration.conftest import (
    _no_leftovers,
    admin_kubeconfig,
    control_plane,
    kube,
    service_account,
)
from tests.tools import InstalledTool, prepare_after_collection

__all__ = ["_no_leftovers", "admin_kubeconfig", "control_plane", "kube", "service_account"]

HELM = InstalledTool("helm", variable="XOCCM_HELM", script="install-helm.sh")


def pytest_collection_finish(session: pytest.Session) -> None:
    prepare_after_collection(session, __file__, HELM)


@pytest.fixture(scope="session")
def helm() -> Path:
    return HELM.path()
