"""The contract subjects of every port, each given the same world.

The Inventory: the in-memory twin and the HTTP adapter against the fake XO.
The NodeStore, LeaderElector, EventRecorder, DeletionBreakerStore and
CertificateRequests: the in-memory kits and the Kubernetes adapters on the real
kube-apiserver (those subjects are marked ``integration``: they need the
control-plane binaries). The clock's
subjects live with its contract (no world to build).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from adapters.kubernetes import ClientSettings, KubeClient, KubernetesNodeStore, connect
from adapters.kubernetes.csr import KubernetesCertificateRequests
from entrypoints.testkits.fake_xo import FakeXOControlClient, FakeXOServer
from tests.contract.csr_drivers import CSRWorld, KubernetesCSRWorld, MemoryCSRWorld
from tests.contract.drivers import Driver, MemoryDriver, XOHTTPDriver
from tests.contract.port_drivers import (
    BreakerWorld,
    EventLog,
    KubernetesBreakerWorld,
    KubernetesEventLog,
    KubernetesNodeWorld,
    Leadership,
    LeaseLeadership,
    MemoryBreakerWorld,
    MemoryEventLog,
    MemoryLeadership,
    MemoryNodeWorld,
    NodeWorld,
    SoleLeadership,
)
from tests.integration import conftest as integration
from tests.integration.controlplane import ControlPlane
from tests.spec.xo_spec import XOSpec
from tests.xo.support import (
    PING_INTERVAL,
    TOKEN,
    TWO_POOLS,
    assert_no_tasks_left,
    make_inventory,
)


@pytest.fixture(autouse=True)
async def no_tasks_left_behind() -> AsyncIterator[None]:
    yield
    await assert_no_tasks_left()


@pytest.fixture(params=["memory", "xo-http"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Driver]:
    """The HTTP subject also holds every request the adapter sent and every answer
    the fake gave during the test to XO's published spec (``tests/spec``)."""
    if request.param == "memory":
        driver: Driver = MemoryDriver()
        await _build_world(driver)
        yield driver
        return
    spec: XOSpec = request.getfixturevalue("xo_spec")
    async with FakeXOServer(
        host="127.0.0.1", port=0, token=TOKEN, ping_interval=PING_INTERVAL
    ) as xo:
        xo.exchanges.start()
        async with FakeXOControlClient(xo.url) as control, make_inventory(xo) as inventory:
            driver = XOHTTPDriver(inventory, control)
            await _build_world(driver)
            yield driver
    problems = spec.exchange_problems(xo.exchanges.exchanges)
    assert not problems, f"not as XO {spec.version}'s spec says:\n" + "\n".join(problems)


async def _build_world(driver: Driver) -> None:
    """Pool A (hosts A1, A2) and pool B (host B1): the XO suites' layout."""
    await TWO_POOLS.through(driver)


# -- the other ports: in memory, and on the real kube-apiserver (integration) -----------
REAL = pytest.mark.integration
control_plane = integration.control_plane
admin_kubeconfig = integration.admin_kubeconfig
_no_leftovers = integration._no_leftovers


@pytest.fixture(params=["memory", pytest.param("kubernetes", marks=REAL)])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[NodeWorld]:
    if request.param == "memory":
        yield MemoryNodeWorld()
        return
    async with _admin(request) as admin, _client(request, "contract") as client:
        world = KubernetesNodeWorld(admin, KubernetesNodeStore(client))
        try:
            async with world.kubernetes:
                async with asyncio.timeout(10):
                    await world.kubernetes.wait_synced()
                yield world
        finally:
            await world.cleanup()


@pytest.fixture(params=["memory", "sole", pytest.param("lease", marks=REAL)])
async def leadership(request: pytest.FixtureRequest) -> AsyncIterator[Leadership]:
    if request.param == "memory":
        yield MemoryLeadership()
        return
    if request.param == "sole":
        yield SoleLeadership()
        return
    plane: ControlPlane = request.getfixturevalue("control_plane")
    lease = LeaseLeadership(lambda: connect(str(plane.admin_kubeconfig), name="leader-election"))
    try:
        yield await lease.start()
    finally:
        await lease.cleanup()


@pytest.fixture(params=["memory", pytest.param("kubernetes", marks=REAL)])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog()
        return
    async with _admin(request) as admin:
        log = KubernetesEventLog(admin)
        try:
            yield log
        finally:
            await log.cleanup()


@pytest.fixture(params=["memory", pytest.param("kubernetes", marks=REAL)])
async def breaker_world(request: pytest.FixtureRequest) -> AsyncIterator[BreakerWorld]:
    if request.param == "memory":
        yield MemoryBreakerWorld()
        return
    async with _admin(request) as admin, _client(request, "contract") as client:
        world = KubernetesBreakerWorld(admin, client)
        try:
            yield world
        finally:
            await world.cleanup()


@pytest.fixture(params=["memory", pytest.param("kubernetes", marks=REAL)])
async def csr_world(request: pytest.FixtureRequest) -> AsyncIterator[CSRWorld]:
    if request.param == "memory":
        yield MemoryCSRWorld()
        return
    plane: ControlPlane = request.getfixturevalue("control_plane")
    async with _admin(request) as admin, _client(request, "contract") as client:
        world = KubernetesCSRWorld(admin, plane, KubernetesCertificateRequests(client))
        try:
            async with world.kubernetes:
                async with asyncio.timeout(10):
                    await world.kubernetes.wait_synced()
                yield world
        finally:
            await world.cleanup()


@asynccontextmanager
async def _client(request: pytest.FixtureRequest, name: str) -> AsyncIterator[KubeClient]:
    """A client of the session's control plane (an async fixture cannot ask for ``kube``)."""
    plane: ControlPlane = request.getfixturevalue("control_plane")
    async with await connect(
        str(plane.admin_kubeconfig), settings=ClientSettings(qps=50, burst=50), name=name
    ) as client:
        yield client


def _admin(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[KubeClient]:
    return _client(request, "admin")
