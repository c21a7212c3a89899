"""Labels never go back in time: random interleavings on the in-memory container.

The whole CCM (the container's controllers, change router, snapshots and the
freshness ledger) runs on a fake clock against the in-memory XO and Node store,
with what makes the real world racy put back in:

- every XO answer is computed when asked and handed back later (a lag drawn by
  hypothesis), so a snapshot can start before a change and arrive after it;
- each XO change event is delivered at once, late, twice or never;
- Node writes take time too (they land at the end of their lag, refused if the
  Node changed meanwhile, as the API server refuses a stale resourceVersion).

Hypothesis draws what happens: live migrations (inside and across pools),
resizes, renames, power changes (running, halted, paused, suspended), time
passing (periodic passes), nodes joining in bursts, stream reconnects and CCM
restarts. Two invariants, restated here from the issue rather than imported:

- **no write goes back**: for each VM and label, the values written can be
  explained by XO states that never go backwards (each written value is the
  value of some state no older than the state the previous write came from);
- **the end matches XO**: once events flow and time passes, every Node's
  region, instance type, VM name and (for a resident VM) zone are those of its
  VM's final state; the shutdown taint is there exactly when the VM does not
  run; the out-of-service taint never on a paused or suspended VM.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.memory import (
    FakeClock,
    InMemoryInventory,
    InMemoryNodeStore,
)
from application.manager import LeaderGate
from domain import labels as L
from domain.errors import CCMError
from domain.model import (
    VM,
    ChangeKind,
    Host,
    Node,
    NodeAddress,
    NodeChange,
    Pool,
    PowerState,
    Readiness,
    Taint,
    TaintEffect,
    VMChange,
)
from domain.options import CCMOptions, OutOfServiceOptions
from domain.policies.instance_type import instance_type
from domain.policies.label_values import sanitize_label_value
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import in_memory_container

GIB = 1024**3
POOL_A = "aaaaaaaa-0000-4000-8000-000000000000"
POOL_B = "bbbbbbbb-0000-4000-8000-000000000000"
HOSTS = {
    "11111111-0000-4000-8000-00000000000a": POOL_A,
    "22222222-0000-4000-8000-00000000000a": POOL_A,
    "33333333-0000-4000-8000-00000000000b": POOL_B,
}
HOST_IDS = tuple(HOSTS)
STATUS_PERIOD = 10.0
GRACE = 30.0
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
RESIDENT = (PowerState.RUNNING, PowerState.PAUSED)
UNINITIALIZED = Taint(L.UNINITIALIZED_TAINT_KEY, TaintEffect.NO_SCHEDULE, "true")


def vm_id(i: int) -> str:
    return f"{i:08x}-c0e8-4000-8000-f11276377030"


# -- the racy world --------------------------------------------------------------------
class Lags:
    """Seconds each answer or write takes, from hypothesis (cycled); 0 once settling."""

    def __init__(self, lags: Sequence[float], clock: FakeClock) -> None:
        self._lags = itertools.cycle(lags or [0.0])
        self._clock = clock
        self.calm = False

    async def wait(self) -> None:
        lag = 0.0 if self.calm else next(self._lags)
        if lag:
            await self._clock.sleep(lag)


class LaggingXO:
    """The in-memory XO, answering late: each answer is XO's state when it was asked."""

    def __init__(
        self, xo: InMemoryInventory, lags: Lags, fates: Sequence[str], clock: FakeClock
    ) -> None:
        self.xo = xo
        self._lags = lags
        self._fates = itertools.cycle(fates or ["now"])
        self._clock = clock

    async def _late(self, call: Any) -> Any:
        try:
            answer = await call
        except CCMError:
            await self._lags.wait()
            raise
        await self._lags.wait()
        return answer

    async def get_vm(self, **kw: Any) -> VM | None:
        return await self._late(self.xo.get_vm(**kw))  # type: ignore[no-any-return]

    async def pools_known(self, **kw: Any) -> Any:
        return await self._late(self.xo.pools_known(**kw))

    def pools_seen(self, **kw: Any) -> frozenset[str]:
        return self.xo.pools_seen(**kw)

    async def servers(self) -> Any:
        return await self._late(self.xo.servers())

    async def find_vms_by_name(self, **kw: Any) -> Sequence[VM]:
        return await self._late(self.xo.find_vms_by_name(**kw))  # type: ignore[no-any-return]

    async def get_host(self, **kw: Any) -> Host | None:
        return await self._late(self.xo.get_host(**kw))  # type: ignore[no-any-return]

    async def get_pool(self, **kw: Any) -> Pool | None:
        return await self._late(self.xo.get_pool(**kw))  # type: ignore[no-any-return]

    async def snapshot(self) -> Any:
        return await self._late(self.xo.snapshot())

    async def admin_view(self) -> bool:
        return True

    async def changes(self) -> AsyncIterator[VMChange]:
        out: asyncio.Queue[VMChange] = asyncio.Queue()

        async def later(change: VMChange, delay: float) -> None:
            await self._clock.sleep(delay)
            out.put_nowait(change)

        async def pump() -> None:
            async for change in self.xo.changes():
                fate = (
                    "now"
                    if self._lags.calm or change.kind is ChangeKind.RESYNC
                    else (next(self._fates))
                )
                if fate == "now":
                    out.put_nowait(change)
                elif fate == "twice":
                    out.put_nowait(change)
                    pending.add(asyncio.ensure_future(later(change, 0.7)))
                elif fate == "late":
                    pending.add(asyncio.ensure_future(later(change, 2.5)))
                # "drop": never delivered

        pending: set[asyncio.Future[None]] = set()
        pumping = asyncio.ensure_future(pump())
        try:
            while True:
                yield await out.get()
        finally:
            pumping.cancel()
            for task in pending:
                task.cancel()


class LaggingNodes(InMemoryNodeStore):
    """Node writes land at the end of their lag; each landed update is checked."""

    def __init__(self, lags: Lags, world: World) -> None:
        super().__init__()
        self._lags = lags
        self._world = world

    async def update(self, *, node: Node, change: NodeChange) -> Node:
        await self._lags.wait()
        written = await super().update(node=node, change=change)
        self._world.written(written, change)
        return written

    async def set_addresses(self, *, node: Node, addresses: Sequence[NodeAddress]) -> Node:
        await self._lags.wait()
        return await super().set_addresses(node=node, addresses=addresses)


# -- what XO said, state by state ------------------------------------------------------
def implied(vm: VM) -> dict[str, str | None]:
    """The labels a VM's state implies (None: this state implies no zone)."""
    return {
        L.ZONE: vm.container if vm.power_state in RESIDENT else None,
        L.REGION: vm.pool_id,
        L.INSTANCE_TYPE: instance_type(cpus=vm.cpus, memory_bytes=vm.memory_bytes),
        L.VM_NAME_LABEL: sanitize_label_value(vm.name_label),
    }


@dataclass
class World:
    clock: FakeClock
    lags: Lags
    xo: InMemoryInventory = field(default_factory=InMemoryInventory)
    #: every state of each VM, in order
    history: dict[str, list[dict[str, str | None]]] = field(default_factory=dict)
    #: per (VM, label): the oldest state the last write of it can have come from
    floor: dict[tuple[str, str], int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    vms: int = 0

    def record(self, vm: VM) -> None:
        self.history.setdefault(vm.id, []).append(implied(vm))

    def written(self, node: Node, change: NodeChange) -> None:
        """A landed write: each label it set must come from a state no older than the
        one the previous write of that label came from."""
        vm = node.system_uuid
        states = self.history.get(vm, [])
        for key, value in change.set_labels.items():
            if key not in (L.ZONE, L.REGION, L.INSTANCE_TYPE, L.VM_NAME_LABEL):
                continue
            low = self.floor.get((vm, key), 0)
            found = next((i for i in range(low, len(states)) if states[i][key] == value), None)
            if found is None:
                older = [i for i in range(low) if states[i][key] == value]
                self.violations.append(
                    f"{node.name} {key}={value}: from state {older or '?'}, "
                    f"after a write from state {low} (of {len(states)})"
                )
                continue
            self.floor[(vm, key)] = found

    def new_vm(self, host: str) -> VM:
        i = self.vms
        self.vms += 1
        vm = VM(
            id=vm_id(i),
            name_label=f"vm-{i}",
            power_state=PowerState.RUNNING,
            pool_id=HOSTS[host],
            container=host,
            cpus=2,
            memory_bytes=4 * GIB,
            main_ip_address=f"10.0.{i // 250}.{i % 250 + 1}",
        )
        self.xo.add_vm(vm)
        self.record(vm)
        return vm

    def change(self, vm: VM) -> None:
        self.record(vm)


# -- the actions -------------------------------------------------------------------
vm_index = st.integers(min_value=0, max_value=7)
actions = st.one_of(
    st.tuples(st.just("migrate"), vm_index, st.sampled_from(HOST_IDS)),
    st.tuples(st.just("resize"), vm_index, st.integers(1, 8), st.integers(1, 16)),
    st.tuples(st.just("rename"), vm_index, st.sampled_from(["web", "db", "Cache 1", "é"])),
    st.tuples(st.just("power"), vm_index, st.sampled_from(list(PowerState))),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.05, 0.5, 1.0, 3.0, 10.0, 40.0])),
    st.tuples(st.just("burst"), st.integers(2, 12)),
    st.tuples(st.just("resync")),
    st.tuples(st.just("restart")),
)


class CCM:
    """The container's CCM on the world's ports; restartable."""

    def __init__(self, world: World, xo: LaggingXO, nodes: LaggingNodes) -> None:
        self._world, self._xo, self._nodes = world, xo, nodes
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        container = in_memory_container(
            Settings(
                leader_elect=False,
                node_status_update_frequency=STATUS_PERIOD,
                node_monitor_period=5.0,
                concurrent_node_syncs=4,
            )
        )
        container.clock.override(self._world.clock)
        container.inventory.override(self._xo)
        container.nodes.override(self._nodes)
        container.options.override(
            CCMOptions(out_of_service=OutOfServiceOptions(enabled=True, grace_period=GRACE))
        )
        gate: LeaderGate = container.gate()
        self._task = asyncio.ensure_future(gate.run(container.runnables()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def kubelet(world: World, nodes: LaggingNodes) -> None:
    """Each kubelet reports Ready exactly while its VM runs."""
    for name, node in list(nodes.nodes.items()):
        vm = world.xo.vms.get(node.system_uuid)
        ready = Readiness.TRUE if vm is not None and vm.running else Readiness.FALSE
        if node.readiness is not ready:
            nodes.set_readiness(name, ready)


def join(world: World, nodes: LaggingNodes, vm: VM) -> None:
    nodes.create(
        Node(
            name=f"node-{vm.id[:8]}",
            system_uuid=vm.id,
            taints=(UNINITIALIZED,),
            readiness=Readiness.TRUE,
        )
    )


async def play(world: World, nodes: LaggingNodes, ccm: CCM, steps: Sequence[Any]) -> None:
    xo = world.xo
    for step in steps:
        kind = step[0]
        ids = list(xo.vms)
        target = ids[step[1] % len(ids)] if kind in ("migrate", "resize", "rename", "power") else ""
        if kind == "migrate":
            world.change(xo.migrate_vm(target, host_id=step[2]))
        elif kind == "resize":
            world.change(xo.update_vm(target, cpus=step[2], memory_bytes=step[3] * GIB))
        elif kind == "rename":
            world.change(xo.update_vm(target, name_label=f"{step[2]}-{len(world.history[target])}"))
        elif kind == "power":
            vm = xo.vms[target]
            state: PowerState = step[2]
            if state is PowerState.HALTED:
                world.change(xo.stop_vm(target))
            else:
                host = vm.container if vm.container in HOSTS else HOST_IDS[0]
                if HOSTS[host] != vm.pool_id:
                    host = next(h for h, p in HOSTS.items() if p == vm.pool_id)
                world.change(xo.update_vm(target, power_state=state, container=host))
        elif kind == "advance":
            await world.clock.advance(step[1])
        elif kind == "burst":
            for i in range(step[1]):
                join(world, nodes, world.new_vm(HOST_IDS[i % len(HOST_IDS)]))
        elif kind == "resync":
            xo.drop_streams()
        elif kind == "restart":
            await ccm.stop()
            ccm.start()
        kubelet(world, nodes)
        await world.clock.settle()


def final_problems(world: World, nodes: LaggingNodes) -> list[str]:
    problems = []
    for node in nodes.nodes.values():
        vm = world.xo.vms[node.system_uuid]
        want = implied(vm)
        have = node.labels
        if node.has_taint(L.UNINITIALIZED_TAINT_KEY):
            problems.append(f"{node.name}: still uninitialized")
            continue
        for key in (L.REGION, L.INSTANCE_TYPE, L.VM_NAME_LABEL):
            if have.get(key) != want[key]:
                problems.append(f"{node.name}: {key}={have.get(key)}, XO says {want[key]}")
        if want[L.ZONE] is not None and have.get(L.ZONE) != want[L.ZONE]:
            problems.append(f"{node.name}: zone={have.get(L.ZONE)}, XO says {want[L.ZONE]}")
        if node.has_taint(L.SHUTDOWN_TAINT.key) == vm.running:
            tainted = node.has_taint(L.SHUTDOWN_TAINT.key)
            problems.append(f"{node.name}: shutdown taint {tainted}, VM {vm.power_state}")
        if node.has_taint(OUT_OF_SERVICE) and vm.power_state is not PowerState.HALTED:
            problems.append(f"{node.name}: out-of-service on a {vm.power_state} VM")
    return problems


@given(
    steps=st.lists(actions, min_size=3, max_size=30),
    lags=st.lists(st.sampled_from([0.0, 0.01, 0.3, 1.5, 4.0]), min_size=1, max_size=8),
    fates=st.lists(
        st.sampled_from(["now", "now", "late", "twice", "drop"]), min_size=1, max_size=8
    ),
)
async def test_labels_never_go_back_and_end_as_xo_says(
    steps: list[Any], lags: list[float], fates: list[str]
) -> None:
    clock = FakeClock()
    world = World(clock=clock, lags=Lags(lags, clock))
    for host, pool in HOSTS.items():
        world.xo.add_pool(Pool(id=pool, name_label=f"pool-{pool[:4]}"))
        world.xo.add_host(Host(id=host, name_label=f"host-{host[:4]}", pool_id=pool))
    nodes = LaggingNodes(world.lags, world)
    ccm = CCM(world, LaggingXO(world.xo, world.lags, fates, clock), nodes)
    for i in range(3):
        join(world, nodes, world.new_vm(HOST_IDS[i]))
    ccm.start()
    try:
        await play(world, nodes, ccm, steps)
        # Calm: answers at once, every event delivered, a reconnect, then enough time
        # for every periodic pass (and the out-of-service grace) to run.
        world.lags.calm = True
        world.xo.drop_streams()
        for _ in range(8):
            await clock.advance(STATUS_PERIOD)
            kubelet(world, nodes)
        await clock.advance(GRACE + STATUS_PERIOD)
        await clock.settle(50)
    finally:
        await ccm.stop()
    assert world.violations == [], "a write went back in time"
    assert final_problems(world, nodes) == []
