"""Xen Orchestra misbehaves while the CCM runs: nothing is deleted that should not
be, no label is lost or corrupted, the process keeps running, and the work that
piled up during the fault (a migration, a VM stopped, a VM deleted under a
NotReady node, a new node) is done within a stated bound once the fault clears.

The bounds follow from the CCM's timings here: lifecycle every 1 s, label and
address sync every 5 s, deletions confirmed after 2 s, and an XO request
retried with backoff doubling from 0.2 s to 10 s (+50 % jitter) under a 60 s
deadline, so a request that kept failing during the fault tries again at most
15 s after it clears.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tools.bench.scenarios import metric

from .world import (
    DECODING_MODES,
    RESULTS,
    TOKEN,
    World,
    fault_scenario,
    texts_holding,
    xo_errors,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

#: The longest retry wait (10 s backoff + 50 % jitter) plus a pass, a deletion
#: confirmation and slack for a 2-core CI machine.
RETRY_BOUND = 25.0


def slower_than(seconds: float) -> Callable[[str], bool]:
    """``fault_seen`` check: some XO request took longer than ``seconds``."""

    def check(text: str) -> bool:
        total = metric(text, "xenorchestra_request_duration_seconds_count")
        fast = metric(text, "xenorchestra_request_duration_seconds_bucket", le=f"{seconds}")
        return total > fast

    return check


def cycling_garbage(
    world: World, modes: tuple[str, ...], *, period: float, **faults: object
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """``inject``/``clear`` for ``fault_scenario``: the fake XO's garbage mode cycles
    through ``modes`` every ``period`` seconds (with ``faults`` set beside it) until cleared."""
    cycling: list[asyncio.Task[None]] = []

    async def cycle() -> None:
        while True:
            for mode in modes:
                world.xo.faults.set(garbage=mode, **faults)
                await asyncio.sleep(period)

    async def inject() -> None:
        cycling.append(asyncio.create_task(cycle()))

    async def clear() -> None:
        for task in cycling:
            task.cancel()
        await asyncio.gather(*cycling, return_exceptions=True)
        world.xo.faults.clear()

    return inject, clear


@pytest.mark.timeout(90)
async def test_xo_down_deletes_nothing_and_the_work_is_done_once_it_answers_again(
    world: World,
) -> None:
    await fault_scenario(
        world,
        name="XO down (connection refused)",
        inject=world.xo.stop,
        clear=world.xo.start,
        fault_seconds=8,
        bound=RETRY_BOUND,
        fault_seen=xo_errors("connection"),
    )


@pytest.mark.timeout(90)
async def test_half_of_xo_requests_answering_500_slow_the_work_down_but_break_nothing(
    world: World,
) -> None:
    async def inject() -> None:
        world.xo.faults.set(error_rate=0.5, error_status=500)

    async def clear() -> None:
        world.xo.faults.clear()

    await fault_scenario(
        world,
        name="50% of XO requests answer 500",
        inject=inject,
        clear=clear,
        fault_seconds=8,
        bound=RETRY_BOUND,
        fault_seen=xo_errors("5xx"),
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_xo_answering_after_ten_seconds_delays_work_without_losing_any(
    world: World,
) -> None:
    async def inject() -> None:
        world.xo.faults.set(latency=10.0)

    async def clear() -> None:
        world.xo.faults.clear()

    await fault_scenario(
        world,
        name="XO answers after 10 s",
        inject=inject,
        clear=clear,
        fault_seconds=15,
        # requests already waiting finish their 10 s, then the retry bound
        bound=RETRY_BOUND + 10,
        fault_seen=slower_than(5.0),
    )


@pytest.mark.timeout(90)
async def test_garbage_bodies_never_reach_a_label_nor_delete_a_node(world: World) -> None:
    inject, clear = cycling_garbage(world, ("html", "truncated", "shape", "no-id"), period=2.5)

    await fault_scenario(
        world,
        name="garbage bodies (html, truncated, shape, no-id)",
        inject=inject,
        clear=clear,
        fault_seconds=10,
        bound=RETRY_BOUND,
        fault_seen=xo_errors("protocol"),
    )


@pytest.mark.timeout(90)
async def test_a_revoked_token_pauses_the_work_and_a_valid_one_resumes_it(world: World) -> None:
    async def inject() -> None:
        world.xo.auth.revoke_token(TOKEN)

    async def clear() -> None:
        world.xo.auth.add_token(token=TOKEN)

    await fault_scenario(
        world,
        name="token revoked mid-run",
        inject=inject,
        clear=clear,
        fault_seconds=8,
        bound=RETRY_BOUND,
        fault_seen=xo_errors("auth"),
    )


@pytest.mark.timeout(90)
async def test_a_disconnected_pool_keeps_its_nodes_and_their_labels(world: World) -> None:
    async def inject() -> None:
        world.xo.state.disconnect_pool(world.pools["b"])
        # Its kubelets may go NotReady too: the most tempting case for a deletion.
        await world.set_ready("b-ready-0", False)

    async def clear() -> None:
        world.xo.state.reconnect_pool(world.pools["b"])

    await fault_scenario(
        world,
        name="pool disconnected",
        inject=inject,
        clear=clear,
        fault_seconds=10,
        bound=RETRY_BOUND,
        pool="b",
        fault_seen=lambda text: (
            metric(
                text,
                "xenorchestra_ccm_node_syncs_total",
                controller="cloud-node-lifecycle",
                result="keep-uncertain",
            )
            > 0
        ),
    )
    assert world.member("b-ready-0").name in world.watch.nodes


@pytest.mark.timeout(90)
async def test_dropped_event_streams_lose_no_change(world: World) -> None:
    """With the label-sync period long (60 s), only the reconnected stream and its
    resync can bring the changes made while it was down."""
    dropping: list[asyncio.Task[None]] = []

    async def keep_dropping() -> None:
        while True:
            world.xo.hub.drop_all()
            await asyncio.sleep(0.5)

    async def inject() -> None:
        dropping.append(asyncio.create_task(keep_dropping()))

    async def clear() -> None:
        for task in dropping:
            task.cancel()
        await asyncio.gather(*dropping, return_exceptions=True)

    await fault_scenario(
        world,
        name="event streams dropped",
        inject=inject,
        clear=clear,
        fault_seconds=8,
        # reconnect backoff (0.5 s doubling to 30 s, +50 %) is at most ~12 s after 8 s
        bound=20,
        flags=["--node-status-update-frequency=60s"],
        fault_seen=lambda _: world.xo.requests.snapshot().get("GET /events", 0) >= 3,
    )


@pytest.mark.timeout(90)
async def test_a_node_moved_to_another_pool_is_kept_when_xo_loses_that_pool(
    world: World,
) -> None:
    """Issue 13 case 1: the providerID keeps the registration pool (a), label sync
    moves the region to the new one (b); when XO loses b the VM answers 404 while
    pool a answers 200, which used to read as a deletion."""
    moved = "a-ready-2"

    async def inject() -> None:
        world.migrate(moved, host=world.hosts["b"][0])
        await world.wait_converged(within=RETRY_BOUND)  # the region label says b now
        await world.set_ready(moved, False)  # its kubelet stops reporting too
        world.xo.state.disconnect_pool(world.pools["b"])

    async def clear() -> None:
        world.xo.state.reconnect_pool(world.pools["b"])

    await fault_scenario(
        world,
        name="cross-pool move, then the new pool lost",
        inject=inject,
        clear=clear,
        fault_seconds=10,
        bound=RETRY_BOUND,
        fault_seen=lambda text: (
            metric(
                text,
                "xenorchestra_ccm_node_syncs_total",
                controller="cloud-node-lifecycle",
                result="keep-uncertain",
            )
            > 0
        ),
    )
    assert world.member(moved).name in world.watch.nodes


@pytest.mark.timeout(90)
async def test_bodies_and_frames_that_break_decoding_break_nothing_else(world: World) -> None:
    """A bogus Content-Encoding, JSON nested 100,000 deep, 1e400 in CPUs, wrong types and
    bytes that are not UTF-8, on REST answers and on VM event frames: each is one
    logged, retried failure; no pass aborts, the change router and the process live."""
    inject, clear = cycling_garbage(world, DECODING_MODES, period=2.0, garble_frames=3)

    await fault_scenario(
        world,
        name="bodies that break decoding (encoding, depth, 1e400, types, UTF-8)",
        inject=inject,
        clear=clear,
        fault_seconds=10,
        bound=RETRY_BOUND,
        fault_seen=xo_errors("protocol"),
    )


@pytest.mark.timeout(90)
async def test_one_vm_whose_answers_break_decoding_costs_that_vm_only(world: World) -> None:
    """The rest of every pass goes on: the work pending elsewhere is done while XO
    keeps answering 1e400 for one VM, a NotReady node's (looked up at every
    lifecycle pass, and in every snapshot list)."""
    ccm = await world.start_ccm()
    await world.wait_converged(within=30)
    spoiled = world.member("b-down-0")
    world.xo.faults.set(garbage="overflow", target=spoiled.vm)
    started = time.monotonic()
    work = await world.pending_work("a")
    recovery = await world.wait_converged(within=RETRY_BOUND)
    await asyncio.sleep(max(0.0, 6.0 - (time.monotonic() - started)))  # a label sync pass
    # Answered 200, refused by the parser: logged per VM (no request failed).
    assert "is not a finite count" in ccm.log, "the spoiled VM was never read"
    assert "left out of the snapshot" in ccm.log
    world.xo.faults.clear()
    await asyncio.sleep(2.0)
    assert not world.unconverged(), world.unconverged()
    world.assert_healthy()
    RESULTS["one VM answering 1e400"] = {
        "summary": f"the work pending on other nodes ({len(work)} items) done in "
        f"{recovery:.1f}s while the fault lasted (bound {RETRY_BOUND:g}s)"
    }


@pytest.mark.timeout(90)
async def test_a_token_with_a_trailing_newline_works_and_never_shows(world: World) -> None:
    """Issue 13 case 3: ``echo tok | base64`` leaves a newline in the Secret. The token
    is stripped at load; revoked mid-run at ``--v=10``, it shows in no log line,
    stderr or Event (it used to, in the HTTP library's error quoting the header)."""

    async def inject() -> None:
        world.xo.auth.revoke_token(TOKEN)

    async def clear() -> None:
        world.xo.auth.add_token(token=TOKEN)

    await fault_scenario(
        world,
        name="token with a trailing newline, revoked mid-run, --v=10",
        inject=inject,
        clear=clear,
        fault_seconds=8,
        bound=RETRY_BOUND,
        flags=["--v=10"],
        token=f"{TOKEN}\n",
        fault_seen=xo_errors("auth"),
    )
    assert not await texts_holding(world, TOKEN)
