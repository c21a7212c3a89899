"""The given state of a test, and the CCM built on it from the composition root.

Every test of a service or a controller starts from the same kind of world:
XO's pools and hosts (:class:`Given`), some VMs and Nodes, a clock that moves
only when told. :class:`World` builds the CCM the way the process does, from
:func:`entrypoints.in_memory.in_memory_container` (as cosmic's
``bootstrap_test_app`` does with its ``bootstrap``), so a test exercises the
wiring production uses: the services share the freshness ledger and the
snapshots the container gives them. A test that needs another collaborator
overrides that one provider (``World(options=...)``, ``World(inventory=mine)``).

The world exposes what a test asserts on: the container's in-memory ports
(``xo``, ``nodes``, ``events``, ``breaker_store``, ``metrics``: each records the
writes and requests it saw), the clock, and the services and controllers.

:class:`Given` is also how the suites that run XO over HTTP (``tests/xo``,
``tests/contract``) lay out their pools and hosts: one description, applied to
the in-memory inventory, to the fake XO's state, or through a contract driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.memory import (
    FakeClock,
    InMemoryBreakerStore,
    InMemoryCertificateRequests,
    InMemoryEventRecorder,
    InMemoryInventory,
    InMemoryMetrics,
    InMemoryNodeStore,
)
from application.manager import LeaderGate
from domain.model import Host, Node, Pool, PowerState, Readiness
from domain.options import CCMOptions, DeletionOptions
from domain.services import LabelSyncService, LifecycleService, RegistrationService
from domain.services.csr_approval import CSRApprovalService
from domain.services.label_sync import LabelSyncResult
from domain.services.registration import AddressSyncResult
from entrypoints.container import Container
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import in_memory_container
from entrypoints.testkits.fake_xo.state import FakeXOState
from tests.unit.factories import HOST_1, HOST_2, HOST_3, POOL_A, POOL_B, node, vm


# -- given state -------------------------------------------------------------------------
class HostsAndPools(Protocol):
    """Where a :class:`Given` can be laid out over HTTP (a contract driver)."""

    async def add_pool(self, *, pool_id: str, name_label: str) -> None: ...

    async def add_host(self, *, host_id: str, pool_id: str, name_label: str) -> None: ...


@dataclass(frozen=True)
class Given:
    """XO's pools and hosts before a test starts."""

    pools: tuple[Pool, ...]
    hosts: tuple[Host, ...] = ()

    def onto_memory(self, inventory: InMemoryInventory) -> None:
        for pool in self.pools:
            inventory.add_pool(pool)
        for host in self.hosts:
            inventory.add_host(host)

    def onto_fake_xo(self, state: FakeXOState) -> None:
        for pool in self.pools:
            state.add_pool(name_label=pool.name_label, pool_id=pool.id)
        for host in self.hosts:
            state.add_host(pool_id=host.pool_id, name_label=host.name_label, host_id=host.id)

    async def through(self, driver: HostsAndPools) -> None:
        for pool in self.pools:
            await driver.add_pool(pool_id=pool.id, name_label=pool.name_label)
        for host in self.hosts:
            await driver.add_host(host_id=host.id, pool_id=host.pool_id, name_label=host.name_label)


#: Pool A, no host: enough for the lifecycle, which only asks whether a VM is there.
ONE_POOL = Given(pools=(Pool(id=POOL_A, name_label="Pool A"),))
#: Pool A with host 1, where the factories' VM runs.
ONE_HOST = Given(
    pools=ONE_POOL.pools, hosts=(Host(id=HOST_1, name_label="xcp-host-1", pool_id=POOL_A),)
)
#: Pool A with hosts 1 and 2: the controllers' world (a VM migrates between them).
ONE_POOL_TWO_HOSTS = Given(
    pools=ONE_POOL.pools,
    hosts=(*ONE_HOST.hosts, Host(id=HOST_2, name_label="xcp-host-2", pool_id=POOL_A)),
)
#: Pools A (hosts 1, 2) and B (host 3): the services' world.
TWO_POOLS = Given(
    pools=(*ONE_POOL.pools, Pool(id=POOL_B, name_label="Pool B")),
    hosts=(*ONE_POOL_TWO_HOSTS.hosts, Host(id=HOST_3, name_label="xcp-host-3", pool_id=POOL_B)),
)

#: A VM found gone deletes its node at once: the deletion guards have tests of their own.
AT_ONCE = CCMOptions(deletion=DeletionOptions(confirm_delay=0))


def vm_uuid(i: int) -> str:
    """The ``i``-th of a series of VM ids (the lifecycle tests' Nodes n0, n1...)."""
    return f"{i:08x}-0000-4000-8000-000000000000"


# -- the CCM on it -----------------------------------------------------------------------
class World:
    """The container's CCM on in-memory ports, a fake clock and ``given`` XO.

    ``options`` replaces the CCM options (default :data:`AT_ONCE`), ``settings``
    the flags; any other keyword overrides the container provider of that name
    (``inventory=``, ``nodes=``, ``clock=``...), as a test with another
    collaborator needs.
    """

    def __init__(
        self,
        given: Given = TWO_POOLS,
        *,
        options: CCMOptions | None = AT_ONCE,
        settings: Settings | None = None,
        **overrides: object,
    ) -> None:
        self.container: Container = in_memory_container(settings or Settings(leader_elect=False))
        clock = overrides.pop("clock", None)
        self.clock: FakeClock = clock if isinstance(clock, FakeClock) else FakeClock()
        self.container.clock.override(self.clock)
        if options is not None:
            self.container.options.override(options)
        for name, provided in overrides.items():
            getattr(self.container, name).override(provided)
        self.xo: InMemoryInventory = self.container.inventory()
        self.nodes: InMemoryNodeStore = self.container.nodes()
        self.events: InMemoryEventRecorder = self.container.events()
        self.breaker_store: InMemoryBreakerStore = self.container.breaker_store()
        self.metrics: InMemoryMetrics = self.container.metrics()
        self.certificate_requests: InMemoryCertificateRequests = (
            self.container.certificate_requests()
        )
        if "inventory" not in overrides:
            given.onto_memory(self.xo)

    # -- the services, as the controllers get them ---------------------------------------
    @property
    def registration(self) -> RegistrationService:
        return self.container.registration()

    @property
    def lifecycle(self) -> LifecycleService:
        return self.container.lifecycle()

    @property
    def label_sync(self) -> LabelSyncService:
        return self.container.label_sync()

    @property
    def csr_approval(self) -> CSRApprovalService:
        return self.container.csr_approval()

    async def label_pass(self) -> LabelSyncResult:
        """The label-sync controller's next periodic pass, a status period after the
        last: past the window in which the container shares one XO snapshot."""
        await self.clock.advance(self.container.settings().node_status_update_frequency)
        return await self.label_sync.run_pass()

    async def address_pass(self) -> AddressSyncResult:
        """The cloud-node controller's next periodic address pass, a status period later."""
        await self.clock.advance(self.container.settings().node_status_update_frequency)
        return await self.registration.sync_addresses()

    def restarted(self, *, options: CCMOptions | None = AT_ONCE) -> World:
        """A new CCM process on what outlives one: XO, the Nodes, the events, the
        breaker's store and the time. Everything the process kept in memory is new."""
        return World(
            options=options,
            inventory=self.xo,
            nodes=self.nodes,
            events=self.events,
            breaker_store=self.breaker_store,
            clock=self.clock,
        )

    # -- given VMs and Nodes ---------------------------------------------------------------
    async def join(self, name: str = "worker-1", **fields: Any) -> Node:
        """kubelet registers ``name``; the cloud-node controller initializes it."""
        self.nodes.create(node(name, **fields))
        await self.registration.sync(name=name)
        return self.nodes.nodes[name]

    def add_registered(
        self,
        name: str,
        vm_id: str,
        *,
        running: bool = True,
        power: PowerState | None = None,
        readiness: Readiness = Readiness.FALSE,
    ) -> str:
        """Node ``name`` as the CCM left it (providerID set, no taint), NotReady by
        default, on VM ``vm_id`` of pool A, running unless said otherwise."""
        state = power or (PowerState.RUNNING if running else PowerState.HALTED)
        self.xo.add_vm(vm(id=vm_id, power_state=state))
        self.nodes.create(
            node(
                name,
                taints=(),
                provider_id=f"xenorchestra://{POOL_A}/{vm_id}",
                readiness=readiness,
            )
        )
        return name

    def add_series(self, count: int, *, start: int = 0, running: bool = True) -> list[str]:
        """Nodes n<start>... (:meth:`add_registered`), each on VM :func:`vm_uuid` (i)."""
        return [
            self.add_registered(f"n{i}", vm_uuid(i), running=running)
            for i in range(start, start + count)
        ]

    def delete_vms(self, names: Sequence[str]) -> None:
        """The VMs of Nodes n<i> (:meth:`add_series`) are removed from XO."""
        for name in names:
            self.xo.delete_vm(vm_uuid(int(name[1:])))

    # -- the controllers running -------------------------------------------------------------
    async def __aenter__(self) -> World:
        """The controllers run (leading) inside ``async with world``; time moves only
        with :attr:`clock`."""
        gate: LeaderGate = self.container.gate()
        self._running = asyncio.create_task(gate.run(self.container.runnables()))
        await self.clock.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running.cancel()
        await asyncio.gather(self._running, return_exceptions=True)


def controllers_world(**settings: Any) -> World:
    """The controllers' world: pool A with hosts 1 and 2, and these flags (leader
    election off: the in-memory elector always leads)."""
    return World(ONE_POOL_TWO_HOSTS, settings=Settings(leader_elect=False, **settings))
