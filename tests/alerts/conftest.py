"""Fixtures of the alert and dashboard tests.

``promtool`` is the binary scripts/install-promtool.sh provides (``XOCCM_PROMTOOL``
when set, as scripts/test does), fetched once collection is over so it never
counts against a test's timeout. The scrape test reuses the integration suite's
real etcd + kube-apiserver and its no-leftover check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import (
    _no_leftovers,
    admin_kubeconfig,
    ccm_processes,
    control_plane,
    kube,
    start_ccm,
)
from tests.tools import InstalledTool, prepare_after_collection

__all__ = [
    "_no_leftovers",
    "admin_kubeconfig",
    "ccm_processes",
    "control_plane",
    "kube",
    "start_ccm",
]

PROMTOOL = InstalledTool("promtool", variable="XOCCM_PROMTOOL", script="install-promtool.sh")


def pytest_collection_finish(session: pytest.Session) -> None:
    prepare_after_collection(session, __file__, PROMTOOL)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return PROMTOOL.path()
