"""Fixtures for the ``doctor`` tests: the real kube-apiserver of tests/integration
(re-exported here, with its no-leftovers guard) and the fake XO in-process.

Every test starts from a healthy cluster: no nodes, the CCM's RBAC applied,
a fresh Lease, a fake XO with two pools (see :mod:`tests.doctor.support`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.kubernetes import KubeClient
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.integration import conftest as integration
from tests.integration.controlplane import ControlPlane
from tests.xo.pki import ThrowawayPKI, make_pki
from tests.xo.support import TOKEN, World, build_world

from .support import Cluster, ccm_kubeconfig, reset_cluster

# The real kube-apiserver's fixtures, and its guard against leftover tasks and threads.
control_plane = integration.control_plane
admin_kubeconfig = integration.admin_kubeconfig
kube = integration.kube
service_account = integration.service_account
_no_leftovers = integration._no_leftovers


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPKI:
    return make_pki(tmp_path_factory.mktemp("doctor-pki"))


@pytest.fixture
async def xo(pki: ThrowawayPKI) -> AsyncIterator[FakeXOServer]:
    """The fake XO over https, signed by the test CA."""
    async with FakeXOServer(
        token=TOKEN, ping_interval=0.2, ssl_context=pki.server_context()
    ) as server:
        yield server


@pytest.fixture
def world(xo: FakeXOServer) -> World:
    return build_world(xo)


@pytest.fixture
async def cluster(
    kube: KubeClient,
    control_plane: ControlPlane,
    xo: FakeXOServer,
    world: World,
    pki: ThrowawayPKI,
    tmp_path: Path,
) -> Cluster:
    await reset_cluster(kube)
    kubeconfig = await ccm_kubeconfig(kube, control_plane)
    return Cluster(kube=kube, xo=xo, world=world, pki=pki, kubeconfig=kubeconfig, workdir=tmp_path)
