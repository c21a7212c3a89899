"""Fixtures of the migration suite: the integration suite's real kube-apiserver
(``control_plane``, ``kube``, ...) and the packaging suite's ``helm``, imported so
each has one definition."""

from __future__ import annotations

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
from tests.packaging.conftest import helm

__all__ = ["_no_leftovers", "admin_kubeconfig", "control_plane", "helm", "kube", "service_account"]


def pytest_collection_finish(session: pytest.Session) -> None:
    here = Path(__file__).parent
    mine = [i for i in session.items if here in Path(str(i.path)).parents]
    if any(i.get_closest_marker("integration") for i in mine):
        integration.pytest_collection_finish(session)
