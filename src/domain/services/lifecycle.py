"""Node lifecycle: the ``cloud-node-lifecycle`` controller's pass over all Nodes."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain import labels
from domain.errors import (
    CCMError,
    InventoryError,
    NodeGoneError,
    PoolUnavailableError,
    ProviderIDError,
    VMDeletedError,
    VMNotFoundError,
)
from domain.freshness import Freshness, Observation
from domain.matching import confirm_absence, placement_pools, vm_id_candidates
from domain.model import EventType, Node, NodeChange, XOServer
from domain.options import CCMOptions
from domain.policies.deletion_confirmation import DeletionConfirmation
from domain.policies.deletion_refusals import DeletionOutcome, GuardState, refusal
from domain.policies.lifecycle import (
    UNKNOWN_STATES,
    LifecycleAction,
    VMState,
    decide,
    needs_check,
    needs_lookup,
    state_of,
)
from domain.policies.out_of_service import out_of_service_due, plan_out_of_service
from domain.policies.xo_servers import pool_current, server_problem
from domain.ports import Clock, DeletionBreakerStore, EventRecorder, Inventory, Metrics, NodeStore
from domain.providerid import is_ours
from domain.services.deletion_breaker import Grant, PersistedBreaker, Reservation
from domain.services.node_updates import update_on_conflict_retry
from domain.services.quiet_pass import QuietPass

log = logging.getLogger(__name__)

SOURCE = "cloud-node-lifecycle-controller"
#: Seconds a confirmation that the credentials see all of XO is trusted for.
ADMIN_VIEW_TTL = 10.0


@dataclass(frozen=True, slots=True)
class VMLookup:
    """What XO said about a node's VM, which VM, and when (None: not asked)."""

    state: VMState
    vm_id: str = ""
    seen: Observation | None = None
    #: the pool XO placed the VM in (found VMs only)
    pool_id: str = ""
    #: XO answered 404 for the VM, and each pool not vouched for answered without its
    #: control domains: what a token whose ACLs hide them sees (or a failed VM fetch)
    absence_unconfirmed: bool = False


@dataclass(frozen=True, slots=True)
class AdminAnswer:
    """What XO said of the credentials: ``admin`` True, False (XO says they are not
    an admin's), None (it could not say); ``reason`` says why a deletion is unverified."""

    admin: bool | None
    reason: str = ""


NOT_ADMIN = (
    "XO says the credentials are not an admin's: they may not see every VM, so a VM "
    "they cannot find proves nothing"
)


@dataclass(frozen=True, slots=True)
class ServersSeen:
    """XO's servers as asked before a VM's answer, for the out-of-service taint:
    ``servers`` None when this XO has no list of them; ``error`` when unreadable."""

    servers: Sequence[XOServer] | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class CheckResult:
    action: LifecycleAction
    #: check this node again after so many seconds (a deletion awaiting confirmation)
    recheck_after: float | None = None


@dataclass(frozen=True, slots=True)
class LifecyclePassResult:
    actions: Counter[LifecycleAction]
    rechecks: dict[str, float] = field(default_factory=dict)


def _taint_change(node: Node, action: LifecycleAction) -> NodeChange:
    if action is LifecycleAction.REMOVE_SHUTDOWN_TAINT and node.carries(labels.SHUTDOWN_TAINT):
        return NodeChange(remove_taints=(labels.SHUTDOWN_TAINT,))
    if (
        action is LifecycleAction.ADD_SHUTDOWN_TAINT
        and not node.ready
        and not node.carries(labels.SHUTDOWN_TAINT)
    ):
        return NodeChange(add_taints=(labels.SHUTDOWN_TAINT,))
    return NodeChange()


class LifecycleService:
    """Deletes Nodes whose VM is gone and taints Nodes whose VM is shut down.

    Deletion waits for its confirmation (:class:`DeletionConfirmation`), then
    a dry run only reports it, and a real one must get a slot from the deletion
    breaker (:class:`PersistedBreaker`, its state in ``breaker``). The
    out-of-service taint is added after its grace period when enabled. Per-node
    state is dropped once the node is gone, whoever deleted it.
    """

    def __init__(
        self,
        *,
        inventory: Inventory,
        nodes: NodeStore,
        events: EventRecorder,
        clock: Clock,
        breaker: DeletionBreakerStore,
        options: CCMOptions | None = None,
        metrics: Metrics | None = None,
        freshness: Freshness | None = None,
    ) -> None:
        self._inventory = inventory
        self._freshness = Freshness(clock) if freshness is None else freshness
        #: XO's last answer about the credentials (admin or not), and when
        self._admin_answer: tuple[float, AdminAnswer] | None = None
        self._said_no_servers = False
        self._nodes = nodes
        self._events = events
        self._clock = clock
        self._options = options or CCMOptions()
        self._metrics = metrics
        self.confirmation = DeletionConfirmation(self._options.deletion.confirm_delay)
        self.breaker = PersistedBreaker(store=breaker, options=self._options.deletion, clock=clock)
        #: since when each node's VM has been seen halted (the out-of-service grace),
        #: and the ticket of the answer that first said so
        self._halted_since: dict[str, tuple[float, int]] = {}
        #: nodes whose last check read their VM halted (not an outage's unknown)
        self._halted_last: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._total_nodes = 0
        #: nodes a pass found nothing to check on: the very (immutable) Node value it
        #: saw, so the next pass skips an unchanged node without looking at it again
        self._quiet: dict[str, Node] = {}
        #: the nodes of the last pass that checked none of them
        self._quiet_pass: QuietPass[bool] = QuietPass()

    def _visit(self, node: Node) -> bool:
        """Whether the pass checks the node: :func:`needs_check`, or state kept about it."""
        if self._quiet.get(node.name) is node:
            return False
        key = node.uid or node.name
        if needs_check(node) or key in self._halted_since or self.confirmation.watching(key):
            self._quiet.pop(node.name, None)
            return True
        self._quiet[node.name] = node
        return False

    async def start(self) -> None:
        """Read the breaker's state: the controller starts (this replica leads)."""
        await self.breaker.load()

    def _forget_gone(self, existing: list[Node]) -> None:
        """Drop the per-node state of nodes that are gone (deleted by anyone)."""
        keys = {n.uid or n.name for n in existing}
        self.confirmation.keep_only(keys)
        for key in [k for k in self._halted_since if k not in keys]:
            del self._halted_since[key]
        self._halted_last &= keys

    def _forget(self, key: str) -> None:
        self.confirmation.seen_present(key)
        self._halted_since.pop(key, None)
        self._halted_last.discard(key)

    @property
    def tracked_nodes(self) -> int:
        """Nodes this service keeps state about (confirmations, shutdown times)."""
        return len(self.confirmation) + len(self._halted_since)

    async def run_pass(self) -> LifecyclePassResult:
        """One pass over the nodes that may need something (not Ready, tainted by us,
        or with state kept here): at rest a healthy fleet costs no check at all.
        A failure on one node never stops the pass."""
        actions: Counter[LifecycleAction] = Counter()
        rechecks: dict[str, float] = {}
        all_nodes = list(await self._nodes.list())
        self._total_nodes = len(all_nodes)
        await self.breaker.refresh()
        # Nothing tracked and the nodes of a pass that checked none: nothing to check.
        if self.tracked_nodes or self._quiet_pass.derived_from(all_nodes) is None:
            if self.tracked_nodes:
                self._forget_gone(all_nodes)
            for node in all_nodes:
                if not self._visit(node):
                    continue
                result = await self.check(node)
                actions[result.action] += 1
                if result.recheck_after is not None:
                    rechecks[node.name] = result.recheck_after
            if len(self._quiet) > len(all_nodes):  # forget deleted nodes
                present = {node.name for node in all_nodes}
                self._quiet = {n: v for n, v in self._quiet.items() if n in present}
            if actions or self.tracked_nodes:
                self._quiet_pass.forget()
            else:
                self._quiet_pass.remember(all_nodes, True)
        self._report_breaker()
        return LifecyclePassResult(actions, rechecks)

    async def check_by_name(self, *, name: str) -> CheckResult:
        """Check one node now (an XO change said its VM was removed)."""
        node = await self._nodes.get(name=name)
        if node is None:
            return CheckResult(LifecycleAction.NOTHING)
        if not self._total_nodes:
            self._total_nodes = len(await self._nodes.list())
        await self.breaker.refresh()
        result = await self.check(node)
        self._report_breaker()
        return result

    def _report_breaker(self) -> None:
        if self._metrics is not None:
            state = self.breaker.state
            self._metrics.deletion_breaker(
                tripped=state is not None and state.tripped,
                deletions_in_window=self.breaker.deletions_in_window(),
                limit=self.breaker.limit(self._total_nodes),
            )

    def _count_deletion(self, outcome: DeletionOutcome) -> None:
        if self._metrics is not None:
            self._metrics.node_deletion(outcome=outcome.value)

    async def check(self, node: Node) -> CheckResult:
        """Check one node; the periodic pass and XO-event checks never overlap on it."""
        self._quiet.pop(node.name, None)  # state about it may change: look again next pass
        lock = self._locks.setdefault(node.name, asyncio.Lock())
        try:
            async with lock:
                return await self._check(node)
        finally:
            if not lock.locked() and self._locks.get(node.name) is lock:
                del self._locks[node.name]

    async def _check(self, node: Node) -> CheckResult:
        # A pass works from the list it read when it began; re-read the node so one
        # deleted (or replaced) meanwhile, e.g. by an XO-event triggered check, is
        # not acted on twice.
        current = await self._nodes.get(name=node.name)
        if current is None or (node.uid and current.uid != node.uid):
            self._forget(node.uid or node.name)
            return CheckResult(LifecycleAction.NOTHING)
        node = current
        key = node.uid or node.name
        # Asked before the VM's answer when the out-of-service taint may be due: an XO
        # that hears from the pool again after serving a stale "halted" must not vouch
        # for that answer.
        servers = await self._servers_seen() if self._taint_may_be_due(node, key) else None
        lookup = await self.vm_state(node) if needs_lookup(node) else None
        state = lookup.state if lookup is not None else None
        action = decide(node=node, vm_state=state)
        unverified = ""
        if (
            action is LifecycleAction.KEEP_UNCERTAIN
            and lookup is not None
            and lookup.absence_unconfirmed
        ):
            # ACLs hide a pool's control domains as they hide its VMs: the node is kept
            # either way, and when XO says the token is a user's the Warning says so.
            answer = await self._admin()
            if answer.admin is False:
                action, unverified = LifecycleAction.DELETION_UNVERIFIED, answer.reason
        now = self._clock.monotonic()
        recheck = None
        reservation = Reservation(Grant.UNKNOWN)
        if (
            lookup is not None
            and lookup.seen is not None
            and not self._freshness.admits(lookup.vm_id, lookup.seen)
        ):
            # A newer answer about this VM was applied, or a change event announced one,
            # while this one was on its way: act on nothing it says (the next check asks
            # again). The VM may have run meanwhile: the time halted starts again.
            log.debug("node %s: VM %s's answer was overtaken; next check", node.name, lookup.vm_id)
            self._halted_since.pop(key, None)
            return CheckResult(LifecycleAction.NOTHING)
        if action is LifecycleAction.DELETE_NODE:
            if not self.confirmation.confirmed(key, now):
                action = LifecycleAction.WAIT_CONFIRMATION
                recheck = self.confirmation.confirm_in(key, now)
                log.info(
                    "node %s: VM gone, confirming in %.0fs before deleting", node.name, recheck
                )
            elif (answer := await self._admin()).admin is not True:
                action, unverified = LifecycleAction.DELETION_UNVERIFIED, answer.reason
            elif self._options.deletion.dry_run:
                # Outside the breaker: a dry run reserves nothing, so every pass
                # reports every node a real run would delete (before its breaker).
                action = LifecycleAction.DRY_RUN_DELETE
            else:
                reservation = await self.breaker.reserve(total_nodes=self._total_nodes)
                if reservation.grant is Grant.RATE_LIMITED:
                    action = LifecycleAction.DELETION_RATE_LIMITED
                elif reservation.grant is Grant.UNKNOWN:
                    action = LifecycleAction.DELETION_BREAKER_UNKNOWN
        else:
            self.confirmation.seen_present(key)
        if state is VMState.HALTED:
            self._halted_last.add(key)
            self._halted_at(key, lookup, now)
        else:
            self._halted_last.discard(key)
            if node.ready or (state is not None and state not in UNKNOWN_STATES):
                self._halted_since.pop(key, None)
        try:
            await self._apply(node, action, lookup, reservation, unverified, servers)
        except CCMError as err:
            log.warning("node %s: %s failed: %s", node.name, action.value, err)
        return CheckResult(action, recheck)

    def _halted_at(self, key: str, lookup: VMLookup | None, now: float) -> None:
        """The VM is halted now: the time halted starts here, unless it was halted
        already and no change of the VM was announced since (it may have run in
        between: then it starts again, whoever applied the answer that saw it run)."""
        held = self._halted_since.get(key)
        if lookup is None or lookup.seen is None:
            self._halted_since.setdefault(key, (now, 0))
        elif held is None or self._freshness.changed_since(lookup.vm_id, held[1]):
            self._halted_since[key] = (now, lookup.seen.start)

    async def _admin(self) -> AdminAnswer:
        """Whether XO says the credentials see all of it (an admin's), its answer kept
        ``ADMIN_VIEW_TTL`` seconds (one request per pass, even for a user's token): a
        token limited by ACLs gets 404 for the VMs it may not see, exactly as for
        deleted ones, so only an admin's 404 proves a deletion."""
        now = self._clock.monotonic()
        if self._admin_answer is not None and now - self._admin_answer[0] <= ADMIN_VIEW_TTL:
            return self._admin_answer[1]
        try:
            admin = await self._inventory.admin_view()
        except InventoryError as err:
            answer = AdminAnswer(None, f"XO could not confirm the credentials see all of it: {err}")
            self._admin_answer = None
        else:
            answer = AdminAnswer(True) if admin else AdminAnswer(False, NOT_ADMIN)
            self._admin_answer = (now, answer)
        return answer

    async def vm_state(self, node: Node) -> VMLookup:
        """What XO says about the node's VM, and when; errors become states, never
        deletions."""
        if not is_ours(node.provider_id):
            return VMLookup(VMState.NOT_OURS)
        try:
            (vm_id,) = vm_id_candidates(node)
        except ProviderIDError as err:
            log.warning("node %s: %s", node.name, err)
            return VMLookup(VMState.LOOKUP_FAILED)
        begun = self._freshness.begin()
        try:
            vm = await self._inventory.get_vm(vm_id=vm_id)
            found = vm or await confirm_absence(
                self._inventory, vm_id=vm_id, pools=placement_pools(node)
            )
        except InventoryError as err:
            log.warning("node %s kept: VM lookup failed: %s", node.name, err)
            return VMLookup(VMState.LOOKUP_FAILED)
        seen = self._freshness.finish(begun)
        if isinstance(found, VMDeletedError):
            return VMLookup(VMState.DELETED, vm_id, seen)
        if isinstance(found, PoolUnavailableError):
            log.warning("node %s kept: %s", node.name, found)
            hidden = bool(found.pools) and set(found.pools) <= set(found.without_vms)
            return VMLookup(VMState.POOL_UNKNOWN, absence_unconfirmed=hidden)
        if isinstance(found, VMNotFoundError):
            log.warning("node %s kept: %s, no pool to confirm a deletion with", node.name, found)
            return VMLookup(VMState.POOL_UNKNOWN)
        return VMLookup(state_of(found), vm_id, seen, found.pool_id)

    async def _apply(
        self,
        node: Node,
        action: LifecycleAction,
        lookup: VMLookup | None,
        reservation: Reservation,
        unverified: str = "",
        servers: ServersSeen | None = None,
    ) -> None:
        if action is LifecycleAction.DELETE_NODE:
            await self._delete(node, reservation, lookup)
            return
        stopped = refusal(
            action,
            node.name,
            GuardState(
                in_window=self.breaker.deletions_in_window(),
                limit=self.breaker.limit(self._total_nodes),
                window=self._options.deletion.window,
                unverified=unverified,
            ),
        )
        if stopped is not None:
            if self._metrics is not None:
                self._metrics.node_deletion(outcome=stopped.outcome.value)
            (log.error if stopped.error else log.warning)("%s", stopped.log)
            await self._record(node, stopped.event_type, stopped.reason, stopped.message)
            return
        if action is LifecycleAction.KEEP_UNCERTAIN:
            state = lookup.state if lookup is not None else None
            log.info("node %s is not ready and its VM state is %s: left alone", node.name, state)
        key = node.uid or node.name
        held = self._halted_since.get(key)
        since = None if held is None else held[0]
        now = self._clock.monotonic()
        halted_for = None if since is None else now - since
        # Added only when XO's servers, asked before the VM's answer, said XO heard from
        # its pool (asked only when the taint may be due: not a request per check).
        xo_current = (
            lookup is not None
            and lookup.state is VMState.HALTED
            and out_of_service_due(
                node=node, halted_for=halted_for, options=self._options.out_of_service
            )
            and self._xo_current_on(node, lookup.pool_id, servers)
        )

        def plan(current: Node) -> NodeChange:
            overtaken = (
                lookup is not None
                and lookup.seen is not None
                and not self._freshness.admit(lookup.vm_id, lookup.seen)
            )
            if overtaken:
                return NodeChange()  # overtaken meanwhile: the next check asks again
            return _taint_change(current, action).merge(
                plan_out_of_service(
                    node=current,
                    halted_for=halted_for,
                    options=self._options.out_of_service,
                    vm_state_known=lookup is None or lookup.state not in UNKNOWN_STATES,
                    pool_current=xo_current,
                )
            )

        await update_on_conflict_retry(self._nodes, node, plan)

    def _taint_may_be_due(self, node: Node, key: str) -> bool:
        """Whether the out-of-service taint may be added at this check (before the VM's
        answer: it may still say otherwise): only after a check that read the VM halted,
        so an outage (XO down, the pool lost) asks nothing more at each check."""
        held = self._halted_since.get(key)
        return (
            key in self._halted_last
            and held is not None
            and out_of_service_due(
                node=node,
                halted_for=self._clock.monotonic() - held[0],
                options=self._options.out_of_service,
            )
        )

    async def _servers_seen(self) -> ServersSeen:
        try:
            return ServersSeen(await self._inventory.servers())
        except InventoryError as err:
            return ServersSeen((), error=str(err))

    def _xo_current_on(self, node: Node, pool_id: str, seen: ServersSeen | None) -> bool:
        """Whether XO's servers, asked before the VM's answer, say its objects of
        ``pool_id`` were current: "halted" may otherwise be the last state XO had of a
        VM started since. Not: the time halted starts again (only current answers
        count). An XO without a list of its servers (before July 2024) drops a pool's
        objects as soon as its event loop fails: taken as current, said once."""
        if seen is None:
            return False  # not asked before this answer: the next check asks
        if seen.servers is None and not seen.error:
            if not self._said_no_servers:
                self._said_no_servers = True
                log.warning(
                    "XO has no list of its servers: the out-of-service taint trusts a "
                    "halted VM without checking XO still hears from its pool"
                )
            return True
        if seen.servers is not None and pool_current(seen.servers, pool_id):
            return True
        problem = seen.error or server_problem(seen.servers or (), pool_id)
        log.warning(
            "node %s: out-of-service taint waits: XO may not hear from pool %s (%s), so "
            "its VM's halted state may be old",
            node.name,
            pool_id or "-",
            problem,
        )
        self._halted_since.pop(node.uid or node.name, None)
        return False

    async def _record(self, node: Node, type: EventType, reason: str, message: str) -> None:
        await self._events.record(
            node=node, type=type, reason=reason, message=message, source=SOURCE
        )

    async def _delete(self, node: Node, reservation: Reservation, lookup: VMLookup | None) -> None:
        # The guards awaited XO and the breaker: an event about the VM (a pool
        # reconnected, the VM came back) may have arrived since the 404.
        if (
            lookup is not None
            and lookup.seen is not None
            and not self._freshness.admit(lookup.vm_id, lookup.seen)
        ):
            await self.breaker.release(reservation)
            log.info("node %s: VM %s changed since its 404: not deleting", node.name, lookup.vm_id)
            return
        # ...and the Node itself, decided on as it was read before them: one Ready again
        # (its kubelet is back) or replaced meanwhile is not the Node to delete.
        current = await self._nodes.get(name=node.name)
        if current is None or current.uid != node.uid or current.ready:
            await self.breaker.release(reservation)
            key = node.uid or node.name
            if current is None or current.uid != node.uid:
                self._forget(key)
            else:
                self.confirmation.seen_present(key)
            log.info("node %s changed while its VM was looked up: not deleting", node.name)
            return
        await self._record(
            node,
            EventType.NORMAL,
            "DeletingNode",
            f"Deleting node {node.name} because it does not exist in the cloud provider",
        )
        key = node.uid or node.name
        try:
            await self._nodes.delete(node=node)
        except NodeGoneError:
            await self.breaker.release(reservation)  # nothing was deleted: give it back
            self._forget(key)
            log.info("node %s was already deleted", node.name)
            return
        except CCMError as err:
            await self.breaker.release(reservation)
            self._count_deletion(DeletionOutcome.FAILED)
            await self._record(
                node,
                EventType.WARNING,
                "DeletingNodeFailed",
                f"Failed deleting node {node.name}: {err}",
            )
            raise
        self._forget(key)
        self._count_deletion(DeletionOutcome.DELETED)
        log.info("node %s deleted: its VM no longer exists", node.name)
