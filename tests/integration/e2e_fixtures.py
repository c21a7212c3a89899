"""Fixtures of the shared-CCM end-to-end modules, imported by each of them.

A module sets ``CONFIG`` (extra cloud-config lines) and ``FLAGS`` (extra CCM
flags) and gets one fake XO and one CCM for all its tests; ``identity`` is
``admin`` unless the module overrides that fixture (e.g. parametrized with
``serviceaccount``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.kubernetes import KubeClient
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .conftest import ServiceAccountFactory
from .e2e_support import CCMDaemon, FakeXOProcess, Nodes, SharedCCM


@pytest.fixture(scope="module")
def fake_xo() -> Iterator[FakeXOProcess]:
    xo = FakeXOProcess().start()
    try:
        yield xo
    finally:
        xo.stop()


@pytest.fixture(scope="module")
def identity() -> str:
    return "admin"


@pytest.fixture(scope="module")
def shared_ccm(
    request: pytest.FixtureRequest,
    identity: str,
    fake_xo: FakeXOProcess,
    admin_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SharedCCM]:
    shared = SharedCCM(
        xo=fake_xo,
        identity=identity,
        admin_kubeconfig=admin_kubeconfig,
        workdir=tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]),
        extra_config=request.module.CONFIG,
        flags=request.module.FLAGS,
    )
    try:
        yield shared
    finally:
        shared.stop()


@pytest.fixture
async def ccm(
    shared_ccm: SharedCCM, kube: KubeClient, service_account: ServiceAccountFactory
) -> CCMDaemon:
    return await shared_ccm.ensure(kube=kube, service_account=service_account)


@pytest.fixture
async def xo(fake_xo: FakeXOProcess) -> AsyncIterator[FakeXOControlClient]:
    async with fake_xo.control() as control:
        yield control


@pytest.fixture
async def nodes(kube: KubeClient) -> AsyncIterator[Nodes]:
    made = Nodes(kube)
    try:
        yield made
    finally:
        await made.cleanup()
