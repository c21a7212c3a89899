"""Deletion safety (confirmation, rate breaker, dry run) and the out-of-service taint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from domain import labels as L
from domain.errors import InventoryError, UnavailableError
from domain.model import VM, NodeChange, PowerState, Readiness, Taint, TaintEffect
from domain.options import (
    CCMOptions,
    DeletionOptions,
    OutOfServiceOptions,
    TagOptions,
)
from domain.policies import deletion_breaker as breaker
from domain.policies.deletion_breaker import ARMED, BreakerState, Verdict
from domain.policies.deletion_confirmation import DeletionConfirmation
from domain.policies.lifecycle import LifecycleAction, needs_check
from domain.policies.out_of_service import (
    ADDED_BY_THIS_CCM,
    OUT_OF_SERVICE,
    plan_out_of_service,
)
from domain.services.lifecycle import ADMIN_VIEW_TTL
from tests.world import ONE_HOST, ONE_POOL, TWO_POOLS, Given, World, vm_uuid

from .factories import HOST_1, HOST_3, POOL_A, POOL_B, VM_1, node, vm

TAGS = TagOptions()


# -- confirmation delay ------------------------------------------------------------------
def test_deletion_needs_two_sightings_confirm_delay_apart() -> None:
    confirmation = DeletionConfirmation(30)
    assert not confirmation.confirmed("n", 0)
    assert not confirmation.confirmed("n", 29)
    assert confirmation.confirm_in("n", 29) == pytest.approx(1)
    assert confirmation.confirmed("n", 30)


def test_vm_seen_again_resets_the_confirmation() -> None:
    confirmation = DeletionConfirmation(30)
    confirmation.confirmed("n", 0)
    confirmation.seen_present("n")
    assert not confirmation.confirmed("n", 40)


def test_sightings_of_nodes_that_are_gone_are_forgotten() -> None:
    confirmation = DeletionConfirmation(30)
    confirmation.confirmed("a", 0)
    confirmation.confirmed("b", 0)
    confirmation.keep_only({"b"})
    assert len(confirmation) == 1
    assert not confirmation.confirmed("a", 40)  # a new node of that uid starts afresh


# -- the breaker's rule (pure; times are epoch seconds) ------------------------------------
RULE = DeletionOptions(confirm_delay=0, rate_minimum=5, rate_percent=10, window=600)


@pytest.mark.parametrize(
    ("nodes", "limit"),
    [
        pytest.param(10, 5, id="minimum-5"),
        pytest.param(100, 10, id="10-percent"),
        pytest.param(1000, 100, id="1000-nodes"),
    ],
)
def test_deletion_rate_limit(nodes: int, limit: int) -> None:
    state = ARMED
    assert breaker.limit(nodes, RULE) == limit
    for i in range(limit):
        decision = breaker.reserve(state, now=i, total_nodes=nodes, options=RULE)
        assert decision.verdict is Verdict.ALLOW and decision.changed
        state = decision.state
    refused = breaker.reserve(state, now=limit, total_nodes=nodes, options=RULE)
    assert refused.verdict is Verdict.RATE_LIMITED
    assert refused.changed and refused.state.tripped_at == limit  # tripped: written
    latched = breaker.reserve(refused.state, now=10_000, total_nodes=nodes, options=RULE)
    assert latched.verdict is Verdict.RATE_LIMITED and not latched.changed


@pytest.mark.parametrize(
    ("state", "now", "verdict", "after"),
    [
        pytest.param(ARMED, 100.0, Verdict.ALLOW, BreakerState((100.0,)), id="armed-grants"),
        pytest.param(
            BreakerState((0.0,) * 5),
            601.0,
            Verdict.ALLOW,
            BreakerState((601.0,)),
            id="outside-the-window-forgotten",
        ),
        pytest.param(
            BreakerState((1.0,) * 5),
            600.0,
            Verdict.RATE_LIMITED,
            BreakerState((1.0,) * 5, tripped_at=600.0),
            id="full-window-trips",
        ),
        pytest.param(
            BreakerState((900.0,) * 5),
            100.0,
            Verdict.RATE_LIMITED,
            BreakerState((900.0,) * 5, tripped_at=100.0),
            id="future-dates-still-count",
        ),
        pytest.param(
            BreakerState((), tripped_at=5.0),
            10_000.0,
            Verdict.RATE_LIMITED,
            BreakerState((), tripped_at=5.0),
            id="tripped-until-reset",
        ),
    ],
)
def test_breaker_rule(
    state: BreakerState, now: float, verdict: Verdict, after: BreakerState
) -> None:
    decision = breaker.reserve(state, now=now, total_nodes=10, options=RULE)
    assert (decision.verdict, decision.state) == (verdict, after)
    assert decision.changed is (after != state)


@pytest.mark.parametrize(
    ("deletions", "granted_at", "left"),
    [
        pytest.param((1.0, 2.0), 2.0, (1.0,), id="its-slot"),
        pytest.param((2.0, 2.0), 2.0, (2.0,), id="one-slot-only"),
        pytest.param((1.0, 2.0000004), 2.0, (1.0,), id="stored-to-the-microsecond"),
        pytest.param((1.0,), 3.0, (1.0,), id="already-out-of-the-window"),
    ],
)
def test_a_released_slot_is_given_back(
    deletions: tuple[float, ...], granted_at: float, left: tuple[float, ...]
) -> None:
    assert breaker.release(BreakerState(deletions), granted_at=granted_at) == BreakerState(left)


async def test_concurrent_checks_of_one_node_delete_it_once() -> None:
    import asyncio

    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.add_registered("n", vm_uuid(1))
    lc.xo.delete_vm(vm_uuid(1))
    results = await asyncio.gather(lc.lifecycle.check_by_name(name="n"), lc.lifecycle.run_pass())
    assert results[0].action is LifecycleAction.DELETE_NODE
    assert lc.events.reasons() == ["DeletingNode"]


async def test_lifecycle_confirms_before_deleting() -> None:
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=30)))
    lc.add_registered("n", vm_uuid(1))
    lc.xo.delete_vm(vm_uuid(1))
    first = await lc.lifecycle.check_by_name(name="n")
    assert first.action is LifecycleAction.WAIT_CONFIRMATION and first.recheck_after == 30
    await lc.clock.advance(30)
    assert (await lc.lifecycle.check_by_name(name="n")).action is LifecycleAction.DELETE_NODE
    assert "n" not in lc.nodes.nodes


async def test_lifecycle_rate_breaker_stops_deleting_and_warns() -> None:
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    for i in range(8):
        lc.add_registered(f"n{i}", vm_uuid(i))
        lc.xo.delete_vm(vm_uuid(i))
    result = await lc.lifecycle.run_pass()
    assert result.actions[LifecycleAction.DELETE_NODE] == 5
    assert result.actions[LifecycleAction.DELETION_RATE_LIMITED] == 3
    assert len(lc.nodes.nodes) == 3
    assert lc.events.reasons().count("NodeDeletionRateLimited") == 3


async def test_a_token_that_no_longer_sees_everything_deletes_nothing() -> None:
    # An ACL-limited token gets 404 for the VMs it may not see, with their pool known.
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.add_registered("n", vm_uuid(1))
    lc.xo.delete_vm(vm_uuid(1))
    lc.xo.admin = False
    result = await lc.lifecycle.check_by_name(name="n")
    assert result.action is LifecycleAction.DELETION_UNVERIFIED
    assert "n" in lc.nodes.nodes
    assert lc.events.reasons() == ["NodeDeletionUnverified"]
    lc.xo.admin = True  # an admin's token again: the deletion goes ahead (XO's answer kept
    await lc.clock.advance(ADMIN_VIEW_TTL + 1)  # that long)
    assert (await lc.lifecycle.check_by_name(name="n")).action is LifecycleAction.DELETE_NODE
    assert "n" not in lc.nodes.nodes


@pytest.mark.parametrize(
    ("admin", "lost", "action", "events"),
    [
        pytest.param(True, False, LifecycleAction.KEEP_UNCERTAIN, [], id="admin"),
        pytest.param(
            False,
            False,
            LifecycleAction.DELETION_UNVERIFIED,
            ["NodeDeletionUnverified"],
            id="not-admin-says-why",
        ),
        # XO lost the pool: an outage, whoever's the token (review s9 F3)
        pytest.param(False, True, LifecycleAction.KEEP_UNCERTAIN, [], id="not-admin-pool-lost"),
    ],
)
async def test_a_vm_missing_with_its_pool_s_vms_unlisted_names_credentials_that_cannot_see(
    admin: bool, lost: bool, action: LifecycleAction, events: list[str]
) -> None:
    """XO's ACLs hide a pool's control domains from a user's token: the pool answers
    without them. The node is kept either way; the Warning says what to fix."""
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    for i in range(3):
        lc.add_registered(f"n{i}", vm_uuid(i))
        lc.xo.delete_vm(vm_uuid(i))
    if lost:
        lc.xo.disconnect_pool(POOL_A)
    else:
        lc.xo.unloaded.add(POOL_A)  # what a user's token sees of a pool without its dom0s
    lc.xo.admin = admin
    result = await lc.lifecycle.run_pass()
    assert dict(result.actions) == {action: 3}
    assert len(lc.nodes.nodes) == 3
    assert lc.events.reasons() == events * 3
    assert lc.xo.requests["admin_view"] == (0 if lost else 1)  # kept 10 s, whatever it said


async def test_a_check_whose_admin_answer_failed_never_borrows_another_s() -> None:
    """Review s9 F2: two checks at once; XO says "not an admin's" to one and times
    out for the other, which keeps its node uncertain (no Warning of the other's)."""
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    for i in range(2):
        lc.add_registered(f"n{i}", vm_uuid(i))
        lc.xo.delete_vm(vm_uuid(i))
    lc.xo.unloaded.add(POOL_A)
    gates = [asyncio.Event(), asyncio.Event()]
    asked = 0

    async def admin_view() -> bool:
        nonlocal asked
        mine, asked = asked, asked + 1
        await gates[mine].wait()
        if mine == 0:
            return False
        raise UnavailableError("XO timed out")

    lc.xo.admin_view = admin_view  # type: ignore[method-assign]
    first = asyncio.create_task(lc.lifecycle.check_by_name(name="n0"))
    second = asyncio.create_task(lc.lifecycle.check_by_name(name="n1"))
    while asked < 2:  # noqa: ASYNC110 - both checks wait on XO
        await asyncio.sleep(0)
    gates[0].set()
    said_not = await first
    gates[1].set()
    failed = await second
    assert said_not.action is LifecycleAction.DELETION_UNVERIFIED
    assert failed.action is LifecycleAction.KEEP_UNCERTAIN


async def test_xo_unable_to_confirm_the_admin_view_deletes_nothing() -> None:
    from domain.errors import UnavailableError

    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.add_registered("n", vm_uuid(1))
    lc.xo.delete_vm(vm_uuid(1))

    async def unavailable() -> bool:
        raise UnavailableError("XO timed out")

    lc.xo.admin_view = unavailable  # type: ignore[method-assign]
    assert (
        await lc.lifecycle.check_by_name(name="n")
    ).action is LifecycleAction.DELETION_UNVERIFIED
    assert "n" in lc.nodes.nodes


async def test_the_admin_view_is_asked_once_for_a_burst_of_deletions() -> None:
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    for i in range(3):
        lc.add_registered(f"n{i}", vm_uuid(i))
        lc.xo.delete_vm(vm_uuid(i))
    await lc.lifecycle.run_pass()
    assert lc.nodes.nodes == {}
    assert lc.xo.requests["admin_view"] == 1


async def test_a_vm_announced_after_its_404_is_not_deleted() -> None:
    # The 404 came back, then XO announced the VM (its pool reconnected) before
    # the deletion was written: the node stays.
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    ledger = lc.container.freshness()  # the one the lifecycle service judges by
    lc.add_registered("n", vm_uuid(1))
    lc.xo.delete_vm(vm_uuid(1))
    real_admin_view = lc.xo.admin_view

    async def admin_view_while_the_vm_returns() -> bool:
        ledger.announce(vm_uuid(1))
        return await real_admin_view()

    lc.xo.admin_view = admin_view_while_the_vm_returns  # type: ignore[method-assign]
    await lc.lifecycle.check_by_name(name="n")
    assert "n" in lc.nodes.nodes
    assert "DeletingNode" not in lc.events.reasons()


async def test_dry_run_deletions_only_records() -> None:
    lc = World(
        ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0, dry_run=True))
    )
    lc.add_registered("n", vm_uuid(1))
    lc.xo.delete_vm(vm_uuid(1))
    assert (await lc.lifecycle.check_by_name(name="n")).action is LifecycleAction.DRY_RUN_DELETE
    assert "n" in lc.nodes.nodes and lc.events.reasons() == ["DeletingNodeDryRun"]


# -- out of service ---------------------------------------------------------------------
#: the out-of-service taint as this CCM leaves it: the taint and its annotation
OURS = {"taints": (OUT_OF_SERVICE,), "annotations": {L.OUT_OF_SERVICE_ADDED_BY: ADDED_BY_THIS_CCM}}
#: the same taint added by hand, as Kubernetes' non-graceful shutdown guide says
THEIRS = {"taints": (OUT_OF_SERVICE,)}
#: the annotation alone: the taint was removed by hand
MARK_ONLY = {"annotations": {L.OUT_OF_SERVICE_ADDED_BY: ADDED_BY_THIS_CCM}}
NONE: dict[str, object] = {}


def _kind(change: NodeChange) -> str:
    if change.add_taints:
        assert change.set_annotations == {L.OUT_OF_SERVICE_ADDED_BY: ADDED_BY_THIS_CCM}
        return "add"
    if change.remove_taints:
        assert change.remove_annotations == {L.OUT_OF_SERVICE_ADDED_BY}
        return "remove"
    if change.remove_annotations:
        return "forget"
    assert change.empty
    return "none"


@pytest.mark.parametrize(
    ("enabled", "down_for", "ready", "has", "known", "change"),
    [
        pytest.param(True, 299.0, False, NONE, True, "none", id="within-grace-nothing"),
        pytest.param(True, 300.0, False, NONE, True, "add", id="after-grace-added"),
        pytest.param(False, 9999.0, False, NONE, True, "none", id="disabled-never-added"),
        pytest.param(True, None, True, OURS, True, "remove", id="ready-again-removed"),
        pytest.param(True, None, False, OURS, True, "remove", id="vm-running-again-removed"),
        pytest.param(False, None, False, OURS, True, "remove", id="disabled-ours-still-removed"),
        pytest.param(True, 9999.0, False, OURS, True, "none", id="already-there"),
        # XO said nothing (no answer, the VM's pool lost): neither added nor removed
        pytest.param(True, None, False, OURS, False, "none", id="unknown-kept"),
        pytest.param(True, 9999.0, False, NONE, False, "none", id="unknown-not-added"),
        pytest.param(True, None, True, OURS, False, "remove", id="unknown-but-ready-removed"),
        # an operator's taint (no annotation) is never removed, and none added beside it
        pytest.param(True, None, False, THEIRS, True, "none", id="theirs-vm-running-kept"),
        pytest.param(False, None, False, THEIRS, True, "none", id="theirs-disabled-kept"),
        pytest.param(True, None, True, THEIRS, True, "none", id="theirs-ready-kept"),
        pytest.param(True, 9999.0, False, THEIRS, True, "none", id="theirs-halted-not-taken"),
        # the taint removed by hand: the annotation goes, whatever else
        pytest.param(True, None, True, MARK_ONLY, True, "forget", id="mark-alone-forgotten"),
        pytest.param(True, 9999.0, False, MARK_ONLY, True, "forget", id="mark-alone-halted"),
    ],
)
def test_out_of_service_policy(
    enabled: bool,
    down_for: float | None,
    ready: bool,
    has: dict[str, object],
    change: str,
    known: bool,
) -> None:
    n = node(readiness=Readiness.TRUE if ready else Readiness.FALSE, **has)
    got = plan_out_of_service(
        node=n,
        halted_for=down_for,
        options=OutOfServiceOptions(enabled=enabled, grace_period=300),
        vm_state_known=known,
    )
    assert _kind(got) == change


@pytest.mark.parametrize(
    ("has", "change"),
    [
        pytest.param(False, "none", id="not-added"),
        pytest.param(True, "none", id="ours-kept"),
    ],
)
def test_out_of_service_waits_while_xo_may_not_hear_from_the_pool(has: bool, change: str) -> None:
    n = node(readiness=Readiness.FALSE, **(OURS if has else NONE))
    got = plan_out_of_service(
        node=n,
        halted_for=9999.0,
        options=OutOfServiceOptions(enabled=True, grace_period=300),
        pool_current=False,
    )
    kind = "add" if got.add_taints else "remove" if got.remove_taints else "none"
    assert kind == change


def test_operators_own_out_of_service_taint_is_kept() -> None:
    theirs = Taint(OUT_OF_SERVICE.key, TaintEffect.NO_EXECUTE, "maintenance")
    n = node(taints=(theirs,), readiness=Readiness.TRUE)
    assert plan_out_of_service(
        node=n, halted_for=None, options=OutOfServiceOptions(enabled=True)
    ).empty


def _outage(lc: World, kind: str) -> Callable[[], None]:
    """XO cannot say what became of the VM (no answer, or its pool lost); returns the end."""
    pool = lc.xo.vms[VM_1].pool_id
    if kind == "xo-unreachable":
        lc.xo.fail_with = InventoryError("XO unreachable")
    else:
        lc.xo.disconnect_pool(pool)

    def over() -> None:
        lc.xo.fail_with = None
        lc.xo.reconnect_pool(pool)

    return over


def _out_of_service_world(given: Given = ONE_POOL) -> World:
    """Node ``n`` on a halted VM, the out-of-service taint on after 60 s halted."""
    lc = World(
        given,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=60)),
    )
    lc.add_registered("n", VM_1, running=False)
    return lc


async def _halted_then_started_at_30() -> World:
    """:func:`_out_of_service_world`, checked halted at 0, its VM started at 30."""
    lc = _out_of_service_world(ONE_HOST)
    await lc.lifecycle.run_pass()
    await lc.clock.advance(30)
    lc.xo.start_vm(VM_1, host_id=HOST_1)
    return lc


@pytest.mark.parametrize("outage", ["xo-unreachable", "pool-lost"])
async def test_out_of_service_stays_while_xo_cannot_say(outage: str) -> None:
    """The lifecycle rule leaves a node as it is when XO does not answer or lost the
    VM's pool (KEEP_UNCERTAIN): the out-of-service taint too."""
    lc = _out_of_service_world()
    await lc.lifecycle.run_pass()
    await lc.clock.advance(61)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints
    _outage(lc, outage)
    result = await lc.lifecycle.run_pass()
    assert dict(result.actions) == {LifecycleAction.KEEP_UNCERTAIN: 1}
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints


@pytest.mark.parametrize("outage", ["xo-unreachable", "pool-lost"])
async def test_the_time_halted_goes_on_while_xo_cannot_say(outage: str) -> None:
    lc = _out_of_service_world()
    await lc.lifecycle.run_pass()
    await lc.clock.advance(30)
    over = _outage(lc, outage)
    await lc.lifecycle.run_pass()
    over()
    await lc.clock.advance(31)
    await lc.lifecycle.run_pass()  # halted since 61 s, XO says it again
    await lc.lifecycle.run_pass()  # and XO's servers, asked before it, say XO hears the pool
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints


@pytest.mark.parametrize("outage", ["xo-unreachable", "pool-lost"])
async def test_an_outage_asks_xo_s_servers_at_no_check(outage: str) -> None:
    """Review s9b G1: nodes due for the taint whose VMs XO cannot answer for: nothing
    can follow from XO's servers, so they are not asked at every check of each."""
    lc = World(
        ONE_POOL,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=60)),
    )
    for i in range(5):
        lc.add_registered(f"n{i}", vm_uuid(i), running=False)
    await lc.lifecycle.run_pass()
    await lc.clock.advance(30)
    pool = lc.xo.vms[vm_uuid(0)].pool_id
    if outage == "xo-unreachable":
        lc.xo.fail_with = InventoryError("XO unreachable")
    else:
        lc.xo.disconnect_pool(pool)
    await lc.clock.advance(31)
    for _ in range(3):
        await lc.lifecycle.run_pass()
        await lc.clock.advance(30)
    assert lc.xo.requests["servers"] == 5  # once each, after their last halted answer
    assert not any(OUT_OF_SERVICE in n.taints for n in lc.nodes.nodes.values())


async def test_a_check_overtaken_by_a_newer_answer_restarts_the_grace() -> None:
    """The check that would have seen the VM running was overtaken (an event for it
    arrived while XO's answer was on its way) and acts on nothing; the time halted
    then starts again at the next halted answer, not at one older than the run."""
    lc = await _halted_then_started_at_30()
    answer = lc.xo.get_vm

    async def overtaken(*, vm_id: str) -> VM | None:
        vm = await answer(vm_id=vm_id)
        lc.container.freshness().announce(vm_id)
        return vm

    lc.xo.get_vm = overtaken  # type: ignore[method-assign]
    assert (await lc.lifecycle.check_by_name(name="n")).action is LifecycleAction.NOTHING
    lc.xo.get_vm = answer  # type: ignore[method-assign]
    await lc.clock.advance(25)
    lc.xo.stop_vm(VM_1)
    await lc.clock.advance(6)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints  # halted for 6 s only
    await lc.clock.advance(61)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints


async def test_out_of_service_after_grace_then_removed_when_ready() -> None:
    lc = World(
        ONE_POOL,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=60)),
    )
    lc.add_registered("n", VM_1, running=False)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints
    await lc.clock.advance(61)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints
    lc.nodes.set_readiness("n", Readiness.TRUE)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints


@pytest.mark.parametrize(
    "power",
    [
        pytest.param(PowerState.SUSPENDED, id="suspended"),
        pytest.param(PowerState.PAUSED, id="paused"),
    ],
)
async def test_a_vm_holding_its_memory_never_gets_out_of_service(power: PowerState) -> None:
    # Its pods would be force-deleted and volumes detached while the guest still holds them.
    lc = World(
        ONE_POOL,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=1)),
    )
    lc.add_registered("n", VM_1, power=power)
    await lc.lifecycle.run_pass()
    await lc.clock.advance(3600)
    await lc.lifecycle.run_pass()
    taints = lc.nodes.nodes["n"].taints
    assert OUT_OF_SERVICE not in taints
    assert L.SHUTDOWN_TAINT in taints  # not running: the shutdown taint, as upstream


@pytest.mark.parametrize("enabled", [False, True], ids=["feature-off", "feature-on"])
@pytest.mark.parametrize("power", [PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED])
async def test_an_operators_out_of_service_taint_is_never_removed(
    power: PowerState, enabled: bool
) -> None:
    """Review s10: ``kubectl taint ... out-of-service=nodeshutdown:NoExecute`` on a NotReady
    node (Kubernetes' non-graceful shutdown guide: a hung guest fenced by other means) was
    removed at the next pass, even with the feature off: the value was taken for ours."""
    lc = World(
        ONE_POOL,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=enabled, grace_period=1)),
    )
    lc.xo.add_vm(vm(id=VM_1, power_state=power))
    lc.nodes.create(
        node(
            "n",
            provider_id=f"xenorchestra://{POOL_A}/{VM_1}",
            readiness=Readiness.FALSE,
            **THEIRS,
        )
    )
    for _ in range(3):
        await lc.lifecycle.run_pass()
        await lc.clock.advance(2)
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints
    assert L.OUT_OF_SERVICE_ADDED_BY not in lc.nodes.nodes["n"].annotations
    lc.nodes.set_readiness("n", Readiness.TRUE)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints  # Ready again: still the operator's


@pytest.mark.parametrize("provider_id", ["", "aws:///eu-west-1a/i-0123456789abcdef0"])
async def test_a_node_not_ours_keeps_its_out_of_service_taint(provider_id: str) -> None:
    lc = World(
        ONE_POOL,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=1)),
    )
    lc.nodes.create(
        node(
            "other",
            provider_id=provider_id,
            system_uuid="",
            readiness=Readiness.FALSE,
            **THEIRS,
        )
    )
    await lc.lifecycle.run_pass()
    assert lc.nodes.nodes["other"].taints == (OUT_OF_SERVICE,)


async def _halted_past_grace() -> World:
    """Node n, NotReady, its VM halted past a 1 s grace period: our taint added."""
    lc = World(
        ONE_POOL,
        options=CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=1)),
    )
    lc.add_registered("n", VM_1, running=False)
    await lc.lifecycle.run_pass()
    await lc.clock.advance(2)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints
    return lc


async def test_our_taint_carries_its_annotation_and_both_go_together() -> None:
    lc = await _halted_past_grace()
    assert lc.nodes.nodes["n"].annotations[L.OUT_OF_SERVICE_ADDED_BY] == ADDED_BY_THIS_CCM
    lc.nodes.set_readiness("n", Readiness.TRUE)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints
    assert L.OUT_OF_SERVICE_ADDED_BY not in lc.nodes.nodes["n"].annotations


async def test_a_shutdown_key_under_another_effect_is_someone_elses() -> None:
    """Kubernetes tells taints apart by key and effect, as the Go CCM removes its
    shutdown taint (NoSchedule): a NoExecute one under that key is not ours to remove."""
    lc = World(ONE_POOL)
    theirs = Taint(L.SHUTDOWN_TAINT.key, TaintEffect.NO_EXECUTE)
    lc.add_registered("n", VM_1, running=False)
    lc.nodes.touch("n", taints=(theirs,))
    await lc.lifecycle.run_pass()
    assert set(lc.nodes.nodes["n"].taints) == {theirs, L.SHUTDOWN_TAINT}  # ours added beside
    lc.xo.update_vm(VM_1, power_state=PowerState.RUNNING)
    lc.nodes.set_readiness("n", Readiness.TRUE)
    await lc.lifecycle.run_pass()
    assert lc.nodes.nodes["n"].taints == (theirs,)


async def test_our_out_of_service_taint_goes_when_the_vm_is_suspended_instead() -> None:
    lc = await _halted_past_grace()
    lc.xo.update_vm(VM_1, power_state=PowerState.SUSPENDED)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints


@pytest.mark.parametrize(
    ("readiness", "has", "checked"),
    [
        (Readiness.TRUE, NONE, False),
        (Readiness.TRUE, {"taints": (L.SHUTDOWN_TAINT,)}, True),
        (Readiness.TRUE, OURS, True),
        (Readiness.TRUE, MARK_ONLY, True),
        (Readiness.TRUE, THEIRS, False),
        (
            Readiness.TRUE,
            {"taints": (Taint(OUT_OF_SERVICE.key, TaintEffect.NO_EXECUTE, "maintenance"),)},
            False,
        ),
        (Readiness.TRUE, {"taints": (Taint("example.com/other", TaintEffect.NO_SCHEDULE),)}, False),
        (Readiness.FALSE, NONE, True),
        (Readiness.UNKNOWN, NONE, True),
    ],
)
def test_which_nodes_a_lifecycle_pass_checks(
    readiness: Readiness, has: dict[str, object], checked: bool
) -> None:
    assert needs_check(node("n", readiness=readiness, **has)) is checked


# -- "gone" is not "deleted": what XO may not hold ---------------------------------------
async def test_a_vm_moved_to_a_pool_xo_lost_keeps_its_node_whatever_pool_it_names() -> None:
    """The VM moved to pool B (its uuid kept); the node still names pool A only (label
    sync off, or not there yet); XO loses pool B: the VM is absent like a deleted one,
    pool A is known, and the node must stay (review s8b, F1)."""
    lc = World(TWO_POOLS, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.xo.add_vm(vm())
    await lc.join("worker-1")
    lc.xo.migrate_vm(VM_1, host_id=HOST_3)
    lc.xo.disconnect_pool(POOL_B)
    lc.nodes.set_readiness("worker-1", Readiness.FALSE)

    for _ in range(2):
        result = await lc.lifecycle.run_pass()
        await lc.clock.advance(31)

    assert dict(result.actions) == {LifecycleAction.KEEP_UNCERTAIN: 1}
    assert "worker-1" in lc.nodes.nodes


async def test_a_pool_xo_has_back_without_its_vms_keeps_their_nodes() -> None:
    """XO reconnected pool A but its fetch of the VMs failed: the pool answers, the VMs
    404 until they change. Their NotReady nodes stay (review s8b, F2)."""
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.add_registered("n1", vm_uuid(1), running=False)
    lc.add_registered("n2", vm_uuid(2), running=False)
    pool = lc.xo.vms[vm_uuid(1)].pool_id
    lc.xo.disconnect_pool(pool)
    lc.xo.reconnect_pool(pool, vms_loaded=False)

    for _ in range(2):
        result = await lc.lifecycle.run_pass()
        await lc.clock.advance(31)
    lc.xo.load_pool_vms(pool)
    after = await lc.lifecycle.run_pass()

    assert dict(result.actions) == {LifecycleAction.KEEP_UNCERTAIN: 2}
    assert {"n1", "n2"} <= lc.nodes.nodes.keys()
    assert LifecycleAction.KEEP_UNCERTAIN not in dict(after.actions)


async def test_a_node_ready_again_while_its_vm_was_looked_up_is_not_deleted() -> None:
    """The decision was made on the Node read before the lookup; the kubelet posted
    Ready while XO was slow to answer: the DELETE is not sent (review s8b, F4)."""
    lc = World(ONE_POOL, options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)))
    lc.add_registered("n", VM_1, running=False)
    lc.xo.delete_vm(VM_1)
    answer = lc.xo.get_vm

    async def slow(*, vm_id: str) -> VM | None:
        lc.nodes.set_readiness("n", Readiness.TRUE)  # meanwhile, the kubelet is back
        return await answer(vm_id=vm_id)

    lc.xo.get_vm = slow  # type: ignore[method-assign]
    await lc.lifecycle.check_by_name(name="n")

    assert "n" in lc.nodes.nodes
    assert "DeletingNode" not in lc.events.reasons()


async def test_a_vm_that_ran_between_two_checks_restarts_its_grace() -> None:
    """Halted at 0, started at 30 (its change event received, the answer that saw it
    run applied by label sync, no lifecycle check in between), halted again at 55: at
    61 it has been halted for 6 s, not 61 (review s8a, F2)."""
    lc = await _halted_then_started_at_30()
    lc.container.freshness().announce(VM_1)  # the change router got XO's event
    await lc.label_sync.sync_node(name="n")
    await lc.clock.advance(25)
    lc.xo.stop_vm(VM_1)
    lc.container.freshness().announce(VM_1)
    await lc.clock.advance(6)

    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints
    await lc.clock.advance(60)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints


@pytest.mark.parametrize(
    ("error", "disconnected"),
    [
        pytest.param("EVENTS_LOST", False, id="server-error"),
        pytest.param("", True, id="server-not-connected"),
    ],
)
async def test_out_of_service_waits_while_xo_may_not_hear_from_the_vm_s_pool(
    error: str, disconnected: bool
) -> None:
    """s8b S2: XO whose event loop with the pool fails keeps serving its last objects
    (for its xapiMarkDisconnectedDelay), a VM started meanwhile still reads halted;
    the NoExecute taint waits until XO's server of the pool is connected without error."""
    lc = _out_of_service_world()
    await lc.lifecycle.run_pass()
    await lc.clock.advance(61)
    pool = lc.xo.vms[VM_1].pool_id
    if error:
        lc.xo.server_errors[pool] = error
    if disconnected:
        lc.xo.server_status[pool] = "connecting"  # XO keeps the objects meanwhile
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints
    assert L.SHUTDOWN_TAINT in lc.nodes.nodes["n"].taints  # upstream's own meaning, as before
    lc.xo.server_errors.clear()
    lc.xo.server_status.clear()
    await lc.lifecycle.run_pass()  # only halted answers of a current XO count: again
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints
    await lc.clock.advance(61)
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints


async def test_xo_hearing_from_the_pool_after_the_vm_s_answer_does_not_vouch_for_it() -> None:
    """Review s9 F1: XO's event loop with the pool failed (error shown) and the VM was
    started meanwhile; the check's answer is the stale "halted", then XO hears from
    the pool again (error cleared, the VM running) before its event reaches the CCM.
    XO's servers are read before the VM's answer: they vouch for nothing after it."""
    lc = _out_of_service_world(ONE_HOST)
    pool = lc.xo.vms[VM_1].pool_id
    await lc.lifecycle.run_pass()
    await lc.clock.advance(61)
    lc.xo.server_errors[pool] = "EVENTS_LOST"
    answer = lc.xo.get_vm

    async def stale_then_recovered(*, vm_id: str) -> VM | None:
        vm = await answer(vm_id=vm_id)  # halted: XO's last state
        lc.xo.server_errors.clear()
        lc.xo.start_vm(VM_1, host_id=HOST_1)
        return vm

    lc.xo.get_vm = stale_then_recovered  # type: ignore[method-assign]
    await lc.lifecycle.run_pass()
    assert OUT_OF_SERVICE not in lc.nodes.nodes["n"].taints


async def test_xo_s_servers_are_asked_only_when_the_taint_is_due() -> None:
    lc = _out_of_service_world()
    await lc.lifecycle.run_pass()
    await lc.clock.advance(30)
    await lc.lifecycle.run_pass()
    assert lc.xo.requests["servers"] == 0
    await lc.clock.advance(31)
    await lc.lifecycle.run_pass()
    await lc.lifecycle.run_pass()  # there now: not asked again
    assert lc.xo.requests["servers"] == 1
    assert OUT_OF_SERVICE in lc.nodes.nodes["n"].taints
