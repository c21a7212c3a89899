"""End to end, with a CCM of each test's own: what is process-wide state.

The startup check of Xen Orchestra, leader failover between two replicas, a
leader cut off from the API server, and the deletion guards (confirmation
delay, rate breaker, dry run): a tripped breaker, a flag or a Lease belongs
to one process, so none of these can share the modules' CCMs. Each test also
has its own fake XO (in process, driven over its control API).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes import KubeClient
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOControlClient, FakeXOServer

from .ccm_process import CCMProcess
from .conftest import StartCCM
from .controlplane import ControlPlane, free_port, write_kubeconfig
from .e2e_support import (
    TOKEN,
    CCMDaemon,
    Nodes,
    World,
    cloud_config_file,
    get_lease,
    leader_status,
    lease_identity,
    lifecycle_results,
    metric,
    node_events,
    node_or_none,
    provider_id,
    report,
    set_ready,
    wait_event,
    wait_gone,
    wait_initialized,
)
from .kube import unique
from .proxy import TcpProxy
from .waiting import until

pytestmark = pytest.mark.integration

FLAGS = ("--node-monitor-period=1s", "--node-status-update-frequency=10m")
VM_BY_ID = "GET /vms/{id}"

#: ccm_process.FAST_LEADER_FLAGS: lease 4 s, renew deadline 3 s, retry 0.5 s.
LEASE, RENEW, RETRY = 4.0, 3.0, 0.5
#: A standby sees the last renewal within a retry (x1.2 jitter), waits a lease
#: duration from then, and takes over at its next retry; 1.5 s of slack for
#: a loaded machine and the polling.
TAKEOVER_BOUND = LEASE + 2 * RETRY * 1.2 + 1.5
POD_NAMESPACE = "kube-system"


@pytest.fixture
async def xo_server() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer() as server:
        yield server


@pytest.fixture
async def xo(xo_server: FakeXOServer) -> AsyncIterator[FakeXOControlClient]:
    async with FakeXOControlClient(xo_server.url) as control:
        yield control


@pytest.fixture
async def nodes(kube: KubeClient) -> AsyncIterator[Nodes]:
    made = Nodes(kube)
    try:
        yield made
    finally:
        await made.cleanup()


# The unreachable XO's CCM retries its startup check for about a minute (the XO
# client's retry deadline) before exiting: it starts with the module, and the
# test that waits for it comes last, so the other scenarios run meanwhile.
@pytest.fixture(scope="module", autouse=True)
def unreachable_xo_ccm(
    admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CCMDaemon, dict[str, str]]]:
    env = pod_env()
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = cloud_config_file(tmp_path_factory.mktemp("e2e-unreachable"), closed)
    daemon = CCMDaemon(kubeconfig=admin_kubeconfig, cloud_config=config, env=env).start()
    try:
        yield daemon, env
    finally:
        daemon.stop()


def pod_env() -> dict[str, str]:
    """The downward-API variables of the Deployment's pod (a made-up pod)."""
    return {
        "POD_NAME": unique("xoccm-e2e-pod"),
        "POD_NAMESPACE": POD_NAMESPACE,
        "POD_UID": str(uuid.uuid4()),
    }


async def failed_to_check_client(kube: KubeClient, pod: str) -> list[dict[str, Any]]:
    """events.k8s.io/v1 ``FailedToCheckClient`` events regarding Pod ``pod``."""
    answer = await kube.request("GET", f"/apis/events.k8s.io/v1/namespaces/{POD_NAMESPACE}/events")
    return [
        e
        for e in answer.get("items") or []
        if e.get("reason") == "FailedToCheckClient"
        and (e.get("regarding") or {}).get("name") == pod
    ]


def assert_check_client_event(events: list[dict[str, Any]], env: dict[str, str]) -> None:
    (event,) = events
    assert event["type"] == "Warning"
    assert event["action"] == "CheckClient"
    assert event["regarding"]["kind"] == "Pod"
    assert event["regarding"]["uid"] == env["POD_UID"]
    assert event["note"].startswith("Failed to check Xen Orchestra client")


# -- the startup check -----------------------------------------------------------------
async def test_a_refused_xo_token_fails_the_startup_check(
    xo_server: FakeXOServer,
    kube: KubeClient,
    start_ccm: StartCCM,
) -> None:
    env = pod_env()
    ccm = await start_ccm(xo_server.url, token="e2e-revoked-token", env=env, ready=False)

    assert await ccm.wait(within=30) == 1
    assert "cannot use Xen Orchestra" in ccm.log
    assert "e2e-revoked-token" not in ccm.log  # never logged
    assert_check_client_event(await failed_to_check_client(kube, env["POD_NAME"]), env)


# -- leadership ------------------------------------------------------------------------
async def test_one_of_two_replicas_leads_and_the_other_takes_over_when_it_dies(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    kube: KubeClient,
    nodes: Nodes,
    start_ccm: StartCCM,
    record_property: Callable[[str, object], None],
) -> None:
    lease = unique("xoccm-e2e-failover")
    replicas = [await start_ccm(xo_server.url, lease=lease) for _ in range(2)]

    async def statuses() -> list[float]:
        return [leader_status(await r.metrics()) for r in replicas if r.returncode is None]

    async def one_leader() -> bool:
        return sorted(await statuses()) == [0.0, 1.0]

    await until(one_leader, within=20, every=0.1)
    await asyncio.sleep(1.0)  # and it stays that way
    assert sorted(await statuses()) == [0.0, 1.0]
    status = [leader_status(await r.metrics()) for r in replicas]
    leader, standby = replicas[status.index(1.0)], replicas[status.index(0.0)]
    holder = (await get_lease(kube, lease))["spec"]["holderIdentity"]
    assert holder == lease_identity(leader.log)
    # component-base's gauge, labelled with the Lease's name
    assert metric(await leader.metrics(), "leader_election_master_status", name=lease) == 1

    world = await World.create(xo, hosts=1)
    first = await world.vm()
    name = await nodes.create("e2e-failover", system_uuid=first["id"])
    await wait_initialized(kube, name)
    # Only the leader runs controllers.
    assert metric(await standby.metrics(), "workqueue_adds_total", name="Nodes") == 0

    killed_at = time.monotonic()
    await leader.kill()

    async def standby_leads() -> bool:
        return leader_status(await standby.metrics()) == 1.0

    await until(standby_leads, within=30, every=0.05)
    takeover = time.monotonic() - killed_at
    report(record_property, "failover: SIGKILL -> standby leads", [takeover])
    assert takeover < TAKEOVER_BOUND, takeover
    holder = (await get_lease(kube, lease))["spec"]["holderIdentity"]
    assert holder == lease_identity(standby.log)

    second = await world.vm()
    name = await nodes.create("e2e-failover", system_uuid=second["id"])
    node = await wait_initialized(kube, name)
    assert node["spec"]["providerID"] == provider_id(world.pool_id, second["id"])


async def test_a_leader_cut_off_from_the_api_server_exits_non_zero(
    xo_server: FakeXOServer,
    control_plane: ControlPlane,
    start_ccm: StartCCM,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    proxy = TcpProxy("127.0.0.1", control_plane.api_port)
    await proxy.start()
    try:
        assert control_plane.admin_cert is not None
        via_proxy = write_kubeconfig(
            tmp_path / "via-proxy.kubeconfig",
            server=f"https://127.0.0.1:{proxy.port}",
            ca_file=control_plane.ca_file,
            user="admin",
            client=control_plane.admin_cert,
        )
        ccm = await start_ccm(xo_server.url, kubeconfig=via_proxy)

        async def leading() -> bool:
            return leader_status(await ccm.metrics()) == 1.0

        await until(leading, within=20, every=0.1)

        cut_at = time.monotonic()
        await proxy.cut()
        code = await ccm.wait(within=30)
        exited = time.monotonic() - cut_at
    finally:
        await proxy.cut()
    report(record_property, "API server cut -> leader exits", [exited])
    assert code != 0
    assert "leader election lost" in ccm.log
    # It gives up once renewals have failed for the renew deadline (counted from
    # its last renewal, up to a retry before the cut), about when its Lease could
    # expire at the earliest: it does not linger on as a second leader.
    assert RENEW - RETRY * 1.2 - 0.1 <= exited < LEASE + 1.0, exited


# -- deletion guards -------------------------------------------------------------------
async def test_a_deletion_waits_for_the_confirmation_delay(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
    record_property: Callable[[str, object], None],
) -> None:
    ccm = await start_ccm(
        xo_server.url, extra="deletionConfirmDelay: 3\n", flags=FLAGS, subscribed=True
    )
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-confirm", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")
    await asyncio.sleep(0.5)  # the CCM's node cache has seen NotReady

    removed_at = time.monotonic()
    await xo.delete_vm(vm["id"])

    async def first_sighting() -> bool:
        text = await ccm.metrics()
        return lifecycle_results(text, "wait-deletion-confirmation") >= 1

    await until(first_sighting, within=10, every=0.05)
    assert await node_or_none(kube, name) is not None, "deleted at the first sighting"
    await wait_gone(kube, name, within=20)
    elapsed = time.monotonic() - removed_at
    report(record_property, "VM removal->node deleted (deletionConfirmDelay 3)", [elapsed])
    assert 3.0 - 0.1 <= elapsed < 3.0 + 5.0, elapsed
    assert (await wait_event(kube, name, "DeletingNode"))["type"] == "Normal"


async def test_the_rate_breaker_stops_deletions_past_the_limit(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    ccm = await start_ccm(
        xo_server.url, extra="deletionConfirmDelay: 1\n", flags=FLAGS, subscribed=True
    )
    world = await World.create(xo, hosts=1)
    vm_ids = await xo.populate(count=10, pool_id=world.pool_id)
    names = [
        await nodes.create(
            "e2e-breaker",
            uninitialized=False,
            ready="False" if i < 8 else "True",
            provider_id=provider_id(world.pool_id, vm_id),
            labels={L.REGION: world.pool_id},
        )
        for i, vm_id in enumerate(vm_ids)
    ]
    cluster = len((await kube.request("GET", "/api/v1/nodes"))["items"])
    # 10% of the cluster is below the minimum of 5 (a shared API server may
    # hold a few more nodes than ours, never 50).
    assert max(5, math.ceil(cluster * 0.10)) == 5, cluster
    await asyncio.sleep(0.5)  # the CCM's node cache has them all

    for vm_id in vm_ids[:8]:
        await xo.delete_vm(vm_id)

    async def gone() -> list[str]:
        return [n for n in names[:8] if await node_or_none(kube, n) is None]

    async def limited() -> list[str]:
        return [
            n for n in names[:8] if await node_events(kube, n, reason="NodeDeletionRateLimited")
        ]

    async def settled() -> bool:
        return len(await gone()) >= 5 and len(await limited()) >= 3

    await until(settled, within=30, every=0.2)
    await asyncio.sleep(2.5)  # two more lifecycle passes: still no more deletions
    deleted, refused = await gone(), await limited()
    assert len(deleted) == 5, deleted
    assert sorted(refused) == sorted(set(names[:8]) - set(deleted))
    for name in refused:
        (event,) = await node_events(kube, name, reason="NodeDeletionRateLimited")
        assert event["type"] == "Warning"
    for name in names[8:]:
        assert await node_or_none(kube, name) is not None
    assert lifecycle_results(await ccm.metrics(), "deletion-rate-limited") >= 3
    for name in deleted:  # each deleted once, by one of the lifecycle's two paths
        (deleting,) = await node_events(kube, name, reason="DeletingNode")
        assert deleting.get("count", 1) == 1, deleting
        assert not await node_events(kube, name, reason="DeletingNodeFailed")


async def test_restart_storms_keep_the_breakers_count(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    """Issue 13, case 4: the breaker's count lives in the cluster, not in the process.

    Twelve nodes whose VMs are gone, a limit of 3 per window, and four CCM
    processes in a row on one Lease, each killed (a crash, an OOM) or stopped
    (a drain) once it has had its say: across the restarts, 3 nodes are deleted,
    never 3 per process.
    """
    cap, total = 3, 12
    lease = unique("xoccm-e2e-storm")
    extra = f"deletionConfirmDelay: 0\ndeletionRateMinimum: {cap}\ndeletionRatePercent: 0\n"
    world = await World.create(xo, hosts=1)
    vm_ids = await xo.populate(count=total, pool_id=world.pool_id)
    names = await nodes.registered("e2e-storm", world.pool_id, vm_ids)
    for vm_id in vm_ids:
        await xo.delete_vm(vm_id)

    async def gone() -> list[str]:
        return [n for n in names if await node_or_none(kube, n) is None]

    try:
        for restart in range(4):
            ccm = await start_ccm(xo_server.url, extra=extra, lease=lease, flags=FLAGS)

            async def had_its_say(ccm: CCMProcess = ccm) -> bool:
                refused = lifecycle_results(await ccm.metrics(), "deletion-rate-limited")
                return refused >= 1 or len(await gone()) == total

            await until(had_its_say, within=30, every=0.2)
            await ccm.kill() if restart % 2 == 0 else await ccm.stop()
        deleted = await gone()
        assert len(deleted) == cap, f"limit {cap} per window, {len(deleted)} deleted: {deleted}"
        breaker = await get_lease(kube, f"{lease}-deletion-breaker")
        annotations = breaker["metadata"]["annotations"]
        assert annotations["deletion-breaker.k8s.xenorchestra/tripped-at"]
        assert len(annotations["deletion-breaker.k8s.xenorchestra/deletions"].split(",")) == cap
    finally:
        with contextlib.suppress(Exception):
            await kube.request(
                "DELETE",
                f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}-deletion-breaker",
            )


async def test_dry_run_deletions_delete_nothing_and_say_so(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    ccm = await start_ccm(
        xo_server.url,
        extra="deletionConfirmDelay: 1\n",
        flags=[*FLAGS, "--dry-run-deletions"],
        subscribed=True,
    )
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-dryrun", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")
    await xo.delete_vm(vm["id"])

    event = await wait_event(kube, name, "DeletingNodeDryRun")
    assert event["type"] == "Normal"

    async def several_passes() -> bool:
        return lifecycle_results(await ccm.metrics(), "dry-run-delete") >= 3

    await until(several_passes, within=20, every=0.2)
    assert await node_or_none(kube, name) is not None
    assert not await node_events(kube, name, reason="DeletingNode")


@pytest.mark.parametrize("failure", ["revoked token", "pool check answers HTML"])
async def test_an_xo_that_answers_wrongly_never_gets_a_node_deleted(
    failure: str,
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    ccm = await start_ccm(
        xo_server.url,
        extra="deletionConfirmDelay: 0\n",  # nothing but the lookup stands in the way
        flags=FLAGS,
        subscribed=True,
    )
    world = await World.create(xo, hosts=1)
    vm = await world.vm()
    name = await nodes.create("e2e-xoerror", system_uuid=vm["id"])
    await wait_initialized(kube, name)
    await set_ready(kube, name, "False")
    await asyncio.sleep(0.5)  # the CCM's node cache has seen NotReady
    uncertain = lifecycle_results(await ccm.metrics(), "keep-uncertain")

    if failure == "revoked token":
        xo_server.auth.revoke_token(TOKEN)
    else:  # the VM is 404, but the pool confirming it answers a proxy's HTML page
        xo_server.faults.set(garbage="html", endpoint="GET /pools/{id}")
    xo_server.state.delete_vm(vm["id"])
    try:

        async def several_passes() -> bool:
            kept = lifecycle_results(await ccm.metrics(), "keep-uncertain")
            return kept >= uncertain + 3

        await until(several_passes, within=20, every=0.2)
        assert await node_or_none(kube, name) is not None
        assert not await node_events(kube, name, reason="DeletingNode")
    finally:
        xo_server.auth.add_token(token=TOKEN)
        xo_server.faults.clear()
    # XO answers properly again: the VM is known to be gone, the node goes.
    await wait_gone(kube, name, within=20)


async def _ten_not_ready_nodes_and_a_slow_xo(
    start_ccm: StartCCM,
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    nodes: Nodes,
    *,
    extra: str = "",
    flags: Sequence[str] = (),
) -> tuple[CCMProcess, list[str], list[str]]:
    """A CCM deleting at the first sighting, ten NotReady nodes whose VMs run,
    and VM lookups that take 0.2 s: a lifecycle pass lasts ~2 s, during which
    an XO ``remove`` event makes the other path (the lifecycle queue) check a node."""
    ccm = await start_ccm(
        xo_server.url,
        extra="deletionConfirmDelay: 0\n" + extra,
        flags=[*FLAGS, "--v=6", *flags],  # --v=6: every XO request in the log
        subscribed=True,
    )
    world = await World.create(xo, hosts=1)
    vm_ids = await xo.populate(count=10, pool_id=world.pool_id)
    names = await nodes.registered("e2e-twopaths", world.pool_id, vm_ids)
    await asyncio.sleep(0.5)  # the CCM's node cache has them all
    xo_server.faults.set(latency=0.2, endpoint=VM_BY_ID)
    return ccm, vm_ids, names


async def _deleted_once(kube: KubeClient, xo_server: FakeXOServer, name: str) -> None:
    """The node is gone, and it was deleted once: one DeletingNode, no failure."""
    await wait_gone(kube, name, within=10)

    async def deleted_again() -> bool:
        return bool(await node_events(kube, name, reason="DeletingNodeFailed"))

    with contextlib.suppress(TimeoutError):  # the pass is over by then
        await until(deleted_again, within=3, every=0.1)
    xo_server.faults.clear()
    failed = await node_events(kube, name, reason="DeletingNodeFailed")
    assert not failed, [e["message"] for e in failed]
    deleting = await node_events(kube, name, reason="DeletingNode")
    assert sum(e.get("count") or 1 for e in deleting) == 1, deleting


async def test_a_node_deleted_by_an_xo_event_during_a_pass_is_not_deleted_again_by_it(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    """Regression: ``LifecycleService.check`` re-reads the node before acting, so
    a pass never acts on the copy it listed before the node was deleted."""
    _, vm_ids, names = await _ten_not_ready_nodes_and_a_slow_xo(start_ccm, xo_server, xo, nodes)
    await _wait_for_a_pass_to_start(xo_server)

    # The pass has just listed the nodes; the last one's VM goes now. The XO
    # event deletes that node at once; the pass reaches it ~2 s later.
    await xo.delete_vm(vm_ids[-1])
    await _deleted_once(kube, xo_server, names[-1])


async def test_a_node_checked_by_both_lifecycle_paths_at_once_is_deleted_once(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    ccm, vm_ids, names = await _ten_not_ready_nodes_and_a_slow_xo(start_ccm, xo_server, xo, nodes)
    lookup = f"XO GET /vms/{vm_ids[-1]} "
    seen = ccm.log.count(lookup)

    async def pass_looks_it_up() -> bool:
        return ccm.log.count(lookup) > seen

    await until(pass_looks_it_up, within=20, every=0.01)
    # The pass's lookup is in flight (0.2 s): the VM goes now, so the pass gets
    # a 404, and the XO event makes the queue look the same node up as well.
    await xo.delete_vm(vm_ids[-1])
    await _deleted_once(kube, xo_server, names[-1])


async def test_the_rate_breaker_holds_when_both_lifecycle_paths_delete_at_once(
    xo_server: FakeXOServer,
    xo: FakeXOControlClient,
    start_ccm: StartCCM,
    kube: KubeClient,
    nodes: Nodes,
) -> None:
    ccm, vm_ids, names = await _ten_not_ready_nodes_and_a_slow_xo(
        start_ccm,
        xo_server,
        xo,
        nodes,
        # One deletion per window; API writes paced 0.5 s apart, as a busy API server would.
        extra="deletionRateMinimum: 1\ndeletionRatePercent: 0\n",
        flags=["--kube-api-qps=2", "--kube-api-burst=1"],
    )
    first, second = 5, 1  # the pass reaches the 6th node; the queue checks the 2nd
    lookup = f"XO GET /vms/{vm_ids[first]} "
    seen = ccm.log.count(lookup)

    async def pass_looks_it_up() -> bool:
        return ccm.log.count(lookup) > seen

    await until(pass_looks_it_up, within=20, every=0.01)
    # Both VMs go while the pass's lookup is in flight: the pass finds the first
    # deleted, the XO event makes the queue find the second deleted, at once.
    await xo.delete_vm(vm_ids[second])
    await xo.delete_vm(vm_ids[first])
    pair = [names[first], names[second]]

    async def decided() -> bool:
        gone = [n for n in pair if await node_or_none(kube, n) is None]
        limited = [n for n in pair if await node_events(kube, n, reason="NodeDeletionRateLimited")]
        return len(gone) + len(limited) >= 2

    await until(decided, within=20, every=0.1)
    await asyncio.sleep(1.5)  # another pass
    xo_server.faults.clear()
    gone = [n for n in pair if await node_or_none(kube, n) is None]
    assert len(gone) == 1, f"limit 1, deleted {gone}"


async def _wait_for_a_pass_to_start(xo_server: FakeXOServer) -> None:
    """Until VM lookups resume after a quiet second: a lifecycle pass began."""
    last, quiet_since = xo_server.requests.snapshot().get(VM_BY_ID, 0), time.monotonic()
    async with asyncio.timeout(20):
        while True:
            await asyncio.sleep(0.02)
            count = xo_server.requests.snapshot().get(VM_BY_ID, 0)
            if count == last:
                continue
            if time.monotonic() - quiet_since > 0.7:
                return
            last, quiet_since = count, time.monotonic()


# -- the startup check, when XO does not answer at all ---------------------------------
@pytest.mark.timeout(120)
async def test_an_unreachable_xo_fails_the_startup_check(
    unreachable_xo_ccm: tuple[CCMDaemon, dict[str, str]], kube: KubeClient
) -> None:
    daemon, env = unreachable_xo_ccm

    async def exited() -> bool:
        return daemon.returncode is not None

    await until(exited, within=100, every=0.2)
    assert daemon.returncode == 1
    assert "cannot use Xen Orchestra" in daemon.log
    assert_check_client_event(await failed_to_check_client(kube, env["POD_NAME"]), env)
