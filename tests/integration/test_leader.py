"""Lease leader election between real candidates on a real API server.

Timings are scaled down (lease 3 s, renew deadline 2 s, retry 0.5 s). A
standby judges expiry from when *it* last saw the record change (client-go's
rule, immune to clock skew), and looks every retry period (x1.2 jitter), so
after the leader's last renewal it takes over within
lease + 2 x retry x 1.2: the first retry to notice that renewal, the second
to notice the expiry.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes import KubeClient, LeaseLeaderElector, connect

from .controlplane import ControlPlane, write_kubeconfig
from .kube import unique
from .proxy import TcpProxy

pytestmark = pytest.mark.integration

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
TAKEOVER_BOUND = LEASE + 2 * RETRY * 1.2 + 0.5
NAMESPACE = "kube-system"

Factory = Callable[..., Awaitable[LeaseLeaderElector]]


@pytest.fixture
async def elector(admin_kubeconfig: Path) -> AsyncIterator[Factory]:
    """Builds candidates, each with its own client; stops them all afterwards."""
    clients: list[KubeClient] = []
    electors: list[LeaseLeaderElector] = []

    async def make(name: str, *, kubeconfig: Path | None = None) -> LeaseLeaderElector:
        client = await connect(str(kubeconfig or admin_kubeconfig), name="leader-election")
        clients.append(client)
        candidate = LeaseLeaderElector(
            client,
            name=name,
            namespace=NAMESPACE,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        )
        electors.append(candidate)
        return candidate

    try:
        yield make
    finally:
        for candidate in electors:
            await candidate.stop()
        for client in clients:
            await client.aclose()


async def lease(kube: KubeClient, name: str) -> dict[str, Any]:
    return await kube.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{name}"
    )


async def cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_exactly_one_candidate_leads_and_release_hands_over_at_once(
    kube: KubeClient, elector: Factory
) -> None:
    name = unique("lease")
    a, b = await elector(name), await elector(name)
    tasks = {a: asyncio.create_task(a.acquire()), b: asyncio.create_task(b.acquire())}
    try:
        async with asyncio.timeout(5):
            await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(2 * RETRY * 1.2)
        leaders = [e for e, t in tasks.items() if t.done()]
        assert len(leaders) == 1, "exactly one candidate must lead"
        [leader] = leaders
        [standby] = [e for e in (a, b) if e is not leader]
        assert leader.is_leader and not standby.is_leader
        record = (await lease(kube, name))["spec"]
        assert record["holderIdentity"] == leader.identity
        assert record["leaseDurationSeconds"] == 3
        assert record["leaseTransitions"] == 0
        assert re.fullmatch(r".+\.\d{6}Z", record["renewTime"])

        released = time.monotonic()
        await leader.release()
        async with asyncio.timeout(5):
            await tasks[standby]
        assert time.monotonic() - released < RETRY * 1.2 + 0.5
        record = (await lease(kube, name))["spec"]
        assert record["holderIdentity"] == standby.identity
        assert record["leaseTransitions"] == 1
        assert not leader.is_leader
    finally:
        await cancel(*tasks.values())


async def test_a_standby_takes_over_once_the_leader_stops_renewing(
    kube: KubeClient, elector: Factory
) -> None:
    name = unique("lease")
    leader, standby = await elector(name), await elector(name)
    async with asyncio.timeout(5):
        await leader.acquire()
    waiting = asyncio.create_task(standby.acquire())
    try:
        await asyncio.sleep(LEASE)  # the standby watches several renewals
        assert not waiting.done(), "a renewed lease must not be taken"
        stopped = time.monotonic()
        await leader.stop()  # a crash: no release
        async with asyncio.timeout(10):
            await waiting
        took = time.monotonic() - stopped
        assert LEASE - RETRY * 1.2 <= took <= TAKEOVER_BOUND
        assert (await lease(kube, name))["spec"]["holderIdentity"] == standby.identity
    finally:
        await cancel(waiting)


async def test_a_leader_cut_off_from_the_api_stops_before_its_lease_expires(
    kube: KubeClient, elector: Factory, control_plane: ControlPlane, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", control_plane.api_port)
    await proxy.start()
    assert control_plane.admin_cert is not None
    via_proxy = write_kubeconfig(
        tmp_path / "proxied.kubeconfig",
        server=f"https://127.0.0.1:{proxy.port}",
        ca_file=control_plane.ca_file,
        user="admin",
        client=control_plane.admin_cert,
    )
    name = unique("lease")
    leader = await elector(name, kubeconfig=via_proxy)
    standby = await elector(name)
    waiting: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(5):
            await leader.acquire()
        waiting = asyncio.create_task(standby.acquire())
        await asyncio.sleep(2 * RETRY)
        cut = time.monotonic()
        await proxy.cut()
        async with asyncio.timeout(10):
            await leader.lost()
        lost_at = time.monotonic()
        assert not leader.is_leader
        assert lost_at - cut <= RENEW + RETRY + 0.5
        assert not waiting.done(), "the leader must stop before anyone else can start"
        async with asyncio.timeout(10):
            await waiting
        assert time.monotonic() - cut <= TAKEOVER_BOUND
        assert (await lease(kube, name))["spec"]["holderIdentity"] == standby.identity
    finally:
        if waiting is not None:
            await cancel(waiting)
        await proxy.cut()


async def test_a_stolen_lease_ends_leadership_at_once(kube: KubeClient, elector: Factory) -> None:
    name = unique("lease")
    leader = await elector(name)
    async with asyncio.timeout(5):
        await leader.acquire()
    current = await lease(kube, name)
    current["spec"]["holderIdentity"] = "intruder"
    await kube.request(
        "PUT",
        f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{name}",
        body=current,
    )
    stolen = time.monotonic()
    async with asyncio.timeout(5):
        await leader.lost()
    assert time.monotonic() - stolen <= 2 * RETRY + 0.5
    assert not leader.is_leader
    assert (await lease(kube, name))["spec"]["holderIdentity"] == "intruder"


async def test_release_clears_the_holder(kube: KubeClient, elector: Factory) -> None:
    name = unique("lease")
    leader = await elector(name)
    async with asyncio.timeout(5):
        await leader.acquire()
    await leader.release()
    record = (await lease(kube, name))["spec"]
    assert "holderIdentity" not in record
    assert record["leaseDurationSeconds"] == 1


async def test_identity_is_hostname_and_a_uuid(elector: Factory) -> None:
    candidate = await elector(unique("lease"))
    hostname, _, suffix = candidate.identity.rpartition("_")
    assert hostname == socket.gethostname()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", suffix)


@pytest.mark.parametrize(
    ("lease_duration", "renew_deadline", "retry_period"),
    [
        pytest.param(10.0, 10.0, 2.0, id="renew-deadline-not-below-lease"),
        pytest.param(15.0, 2.0, 2.0, id="retry-too-close-to-deadline"),
        pytest.param(15.0, 10.0, 0.0, id="zero-retry"),
    ],
)
async def test_inconsistent_timings_are_refused(
    kube: KubeClient, lease_duration: float, renew_deadline: float, retry_period: float
) -> None:
    with pytest.raises(ValueError, match="must"):
        LeaseLeaderElector(
            kube,
            name="x",
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )
