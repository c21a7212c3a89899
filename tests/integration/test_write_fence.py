"""No controller write leaves a replica whose leadership may have lapsed.

The renewer stops the controllers once renewals fail for the renew deadline, but
only when the event loop runs it: after a stall longer than that (simulated here
by moving the elector's clock past the deadline before the renewer's next turn),
the next thing the loop runs may be a controller's write. The controllers' client
asks the leadership fence as each write leaves, on a real API server, through
the Node store the controllers write with. Timings as in ``test_leader.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.kubernetes import (
    KubeClient,
    KubernetesNodeStore,
    LeadershipFence,
    LeaseLeaderElector,
    NotLeadingError,
    connect,
)
from adapters.kubernetes.client import MERGE_PATCH
from domain.errors import NodeStoreError
from domain.model import NodeChange
from entrypoints.container import Container, provide, shutdown
from entrypoints.flags.settings import parse_command_line

from .kube import create_node, delete_node, get_node, unique

pytestmark = pytest.mark.integration

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
LABEL = "fence.test/written"


class SteppedClock:
    """The monotonic clock, plus whatever a test adds (a stall the loop never saw)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


@pytest.fixture
async def node_name(kube: KubeClient) -> AsyncIterator[str]:
    name = unique("fenced")
    await create_node(kube, name)
    try:
        yield name
    finally:
        await delete_node(kube, name)


async def _write_label(store: KubernetesNodeStore, name: str, value: str) -> None:
    node = await store.get(name=name)
    assert node is not None
    await store.update(node=node, change=NodeChange(set_labels={LABEL: value}))


@dataclass
class FencedReplica:
    """A leader's elector and the Node store of its controllers, behind one fence."""

    elector: LeaseLeaderElector
    controllers: KubeClient
    store: KubernetesNodeStore


@contextlib.asynccontextmanager
async def fenced_replica(
    kubeconfig: Path, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[FencedReplica]:
    """A replica as the CCM assembles one (its own client for the Lease), its Node cache
    synced, on ``clock``; stopped (not released) at the end."""
    fence = LeadershipFence(clock)
    leader_client = await connect(str(kubeconfig), name="leader-election")
    controllers = await connect(str(kubeconfig), name="ccm", fence=fence)
    elector = LeaseLeaderElector(
        leader_client,
        name=unique("fence"),
        namespace="kube-system",
        lease_duration=LEASE,
        renew_deadline=RENEW,
        retry_period=RETRY,
        clock=clock,
        fence=fence,
    )
    try:
        async with KubernetesNodeStore(controllers) as store:
            async with asyncio.timeout(10):
                await store.wait_synced()
            yield FencedReplica(elector, controllers, store)
    finally:
        await elector.stop()
        await controllers.aclose()
        await leader_client.aclose()


async def test_a_write_after_a_stall_past_the_renew_deadline_is_not_sent(
    kube: KubeClient, admin_kubeconfig: Path, node_name: str
) -> None:
    clock = SteppedClock()
    async with fenced_replica(admin_kubeconfig, clock) as replica:
        await replica.elector.acquire()
        await _write_label(replica.store, node_name, "leading")
        assert replica.controllers.requests["PATCH"] == 1

        clock.ahead = RENEW  # the loop stalled for a renew deadline: nothing ran
        # (the renewer may have run first, closing the fence: refused either way)
        with pytest.raises(NodeStoreError, match=r"not renewed in time|does not lead"):
            await _write_label(replica.store, node_name, "after-the-stall")
        assert replica.controllers.requests["PATCH"] == 1  # refused before it was sent
        labels = (await get_node(kube, node_name))["metadata"]["labels"]
        assert labels[LABEL] == "leading"

        async with asyncio.timeout(RENEW + 2):
            await replica.elector.lost()  # the renewer, once it runs, gives up: the gate's cue
        with pytest.raises(NodeStoreError, match="does not lead"):
            await _write_label(replica.store, node_name, "after-the-loss")
        assert replica.controllers.requests["PATCH"] == 1


async def test_a_standby_writes_nothing_renewals_keep_the_fence_open_release_closes_it(
    kube: KubeClient, admin_kubeconfig: Path, node_name: str
) -> None:
    async with fenced_replica(admin_kubeconfig) as replica:
        with pytest.raises(NodeStoreError, match="does not lead"):
            await _write_label(replica.store, node_name, "before-leading")
        await replica.elector.acquire()
        await asyncio.sleep(RENEW + RETRY)  # past the first won write's deadline
        await _write_label(replica.store, node_name, "renewed")
        await replica.elector.release()
        with pytest.raises(NodeStoreError, match="does not lead"):
            await _write_label(replica.store, node_name, "released")
    labels = (await get_node(kube, node_name))["metadata"]["labels"]
    assert labels[LABEL] == "renewed"


async def test_the_process_fences_the_controllers_client_and_not_the_leader_s(
    kube: KubeClient, admin_kubeconfig: Path, node_name: str
) -> None:
    """As the CCM assembles itself: with ``--leader-elect`` its controllers' client
    writes only while its elector leads; ``--leader-elect=false`` fences nothing."""
    patch = {"metadata": {"labels": {LABEL: "container"}}}
    path = f"/api/v1/nodes/{node_name}"
    elected = Container(
        settings=parse_command_line(
            [
                f"--kubeconfig={admin_kubeconfig}",
                f"--leader-elect-resource-name={unique('fence')}",
                f"--leader-elect-lease-duration={LEASE}s",
                f"--leader-elect-renew-deadline={RENEW}s",
                f"--leader-elect-retry-period={RETRY}s",
            ]
        )
    )
    try:
        client = await provide(elected.kube_client)
        elector = await provide(elected.leader_elector)
        with pytest.raises(NotLeadingError):
            await client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        await elector.acquire()
        await client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        await elector.release()
        with pytest.raises(NotLeadingError):
            await client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
    finally:
        await shutdown(elected)

    sole = Container(
        settings=parse_command_line([f"--kubeconfig={admin_kubeconfig}", "--leader-elect=false"])
    )
    try:
        client = await provide(sole.kube_client)
        assert client.fence is None
        await client.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
    finally:
        await shutdown(sole)
