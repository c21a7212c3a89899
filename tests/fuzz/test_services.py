"""Bad input through the services: registration, lifecycle, label and address sync.

Two properties, on the container's in-memory variant (``entrypoints.in_memory``):

- **Nodes**: any Node the API server may hold (free-text providerID, systemUUID,
  annotations and condition strings; labels naming known, unknown or no pools),
  converted by the Kubernetes adapter, against an XO with two known pools, a
  running and a halted VM. Only the domain's errors come out, and a Node is
  deleted only when the issue's rule allows it: NotReady, our providerID naming
  a VM that does not exist, and every pool the Node names known to XO.
- **XO answers**: the real XO adapter over a socket, every route answering a
  fuzzed status, headers and body, and no pool answer ever confirming the pool
  asked for: then no Node may be deleted, whatever the VM lookups say.

Each runs every service twice around a clock jump past the deletion
confirmation delay, so a deletion the input could provoke has its chance.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.config import CloudConfig
from adapters.kubernetes.convert import node_from_object
from adapters.memory import FakeClock, InMemoryInventory, InMemoryNodeStore
from domain.model import VM, Host, Node, Pool, PowerState
from domain.providerid import is_uuid
from entrypoints.container import Container, provide
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import in_memory_container
from tests.fuzz.canned import Canned, CannedXO
from tests.fuzz.strategies import FLEET, POOL_LABEL_KEYS, answers, fleets_of_nodes
from tests.fuzz.support import inventory_for, typed

CONFIRM_DELAY = 5.0
_OURS = re.compile(r"\Axenorchestra://([^/]*)/([^/]*)\Z")


class RecordingNodeStore(InMemoryNodeStore):
    """The in-memory store, keeping each Node as it was when deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[Node] = []

    async def delete(self, *, node: Node) -> None:
        current = self.nodes.get(node.name)
        await super().delete(node=node)
        if current is not None:
            self.deleted.append(current)


def deletion_allowed(node: Node) -> str | None:
    """Why the issue's rule forbids deleting ``node`` (None: it allows it).

    Restated here from the issue, not imported from ``domain.matching``.
    """
    if node.ready:
        return "it was Ready"
    match = _OURS.match(node.provider_id)
    if match is None:
        return f"providerID {node.provider_id!r} is not ours"
    if match[2].lower() in FLEET.vm_ids:
        return f"its VM {match[2]} exists"
    named = [match[1]] + [node.labels.get(key, "") for key in POOL_LABEL_KEYS]
    pools = {p.strip().lower() for p in named if is_uuid(p.strip())}
    if not pools:
        return "it names no pool to confirm the absence in"
    unknown = pools - set(FLEET.known_pools)
    if unknown:
        return f"pools {sorted(unknown)} are unknown to XO"
    return None


def container_for(store: InMemoryNodeStore, clock: FakeClock, url: str) -> Container:
    config = CloudConfig(
        url=url,
        token=SecretStr("fuzz"),
        deletionConfirmDelay=CONFIRM_DELAY,
        deletionRatePercent=100,
    )
    container = in_memory_container(Settings(leader_elect=False), cloud_config=config)
    container.nodes.override(store)
    container.clock.override(clock)
    return container


async def run_every_service(container: Container, store: InMemoryNodeStore) -> None:
    """Registration of each Node, lifecycle passes, label and address sync: twice,
    the second time after the confirmation delay. Only CCMError may come out."""
    clock: FakeClock = container.clock()
    registration = await provide(container.registration)
    lifecycle = await provide(container.lifecycle)
    label_sync = await provide(container.label_sync)
    for _ in range(2):
        for name in list(store.nodes):
            await typed(registration.sync(name=name))
        await lifecycle.run_pass()  # a pass handles every failure itself
        await typed(label_sync.run_pass())
        await typed(registration.sync_addresses())
        await clock.advance(CONFIRM_DELAY + 1)
    await lifecycle.run_pass()


def xo_fleet() -> InMemoryInventory:
    inventory = InMemoryInventory()
    for i, pool in enumerate(FLEET.known_pools):
        inventory.add_pool(Pool(id=pool, name_label=f"pool {i}"))
        inventory.add_host(
            Host(id=f"0000000{i}-aaaa-4bbb-8ccc-dddddddddddd", name_label="h", pool_id=pool)
        )
    for vm_id, pool_index, running in FLEET.vms:
        pool = FLEET.known_pools[pool_index]
        host = f"0000000{pool_index}-aaaa-4bbb-8ccc-dddddddddddd"
        inventory.add_vm(
            VM(
                id=vm_id,
                name_label=f"node-{pool_index}",
                power_state=PowerState.RUNNING if running else PowerState.HALTED,
                pool_id=pool,
                container=host if running else pool,
                cpus=2,
                memory_bytes=4 << 30,
                main_ip_address="10.0.0.5" if running else None,
                addresses={"0/ipv4/0": "10.0.0.5"} if running else {},
            )
        )
    return inventory


def _store_of(objects: tuple[dict[str, Any], ...]) -> RecordingNodeStore:
    store = RecordingNodeStore()
    for obj in objects:
        store.create(node_from_object(obj))  # the Kubernetes adapter's conversion
    return store


DELETED = FLEET.deleted_vm
POOL_A, POOL_B = FLEET.known_pools


def _node(name: str, provider_id: str, labels: dict[str, str], ready: str = "False") -> Any:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels},
        "spec": {"providerID": provider_id},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


@given(fleets_of_nodes)
@example(  # case 1: moved to pool B, which XO then lost (here: never knew)
    (
        _node(
            "moved",
            f"xenorchestra://{POOL_A}/{DELETED}",
            {POOL_LABEL_KEYS[0]: FLEET.unknown_pool, POOL_LABEL_KEYS[3]: POOL_A},
        ),
    )
)
@example(  # the rule allows this one: NotReady, VM gone, its pools all known
    (_node("gone", f"xenorchestra://{POOL_A}/{DELETED}", {POOL_LABEL_KEYS[0]: POOL_B}),)
)
async def test_nodes_of_any_shape_are_deleted_only_when_the_rule_allows(
    objects: tuple[dict[str, Any], ...],
) -> None:
    store = _store_of(objects)
    container = container_for(store, FakeClock(), "http://in-memory.invalid")
    container.inventory.override(xo_fleet())
    await run_every_service(container, store)
    for node in store.deleted:
        why_not = deletion_allowed(node)
        assert why_not is None, f"node {node.name} deleted although {why_not}: {node}"


#: Nodes whose VM the fuzzed routes answer about: NotReady (deletable if XO said
#: "gone" convincingly), Ready, and one waiting for registration.
FIXED_NODES = (
    _node("down", f"xenorchestra://{POOL_A}/{DELETED}", {POOL_LABEL_KEYS[0]: POOL_A}),
    _node("up", f"xenorchestra://{POOL_A}/{FLEET.vm_ids[0]}", {}, ready="True"),
    {
        "metadata": {"name": "new", "uid": "uid-new"},
        "spec": {
            "taints": [
                {"key": "node.cloudprovider.kubernetes.io/uninitialized", "effect": "NoSchedule"}
            ]
        },
        "status": {"nodeInfo": {"systemUUID": DELETED}},
    },
)
ROUTES = ("vms", "vm", "hosts", "host", "pools")
#: A pool answer that names another pool than the one asked for: not a confirmation.
OTHER_POOL = Canned(body=b'{"id": "' + POOL_B.encode() + b'", "name_label": "B"}')


@given(
    st.fixed_dictionaries({r: answers() for r in ROUTES}), st.one_of(answers(), st.just(OTHER_POOL))
)
@example({r: Canned(404) for r in ROUTES}, OTHER_POOL)
async def test_no_xo_answer_short_of_a_confirmed_pool_deletes_a_node(
    routes: dict[str, Canned], pool: Canned
) -> None:
    store = _store_of(FIXED_NODES)
    async with CannedXO(routes={**routes, "pool": pool}) as xo, inventory_for(xo.url) as inventory:
        container = container_for(store, FakeClock(), xo.url)
        container.inventory.override(inventory)
        await run_every_service(container, store)
    assert not store.deleted, f"deleted {[n.name for n in store.deleted]} on XO's say-so: {routes}"


def test_the_oracle_allows_what_the_rule_allows() -> None:
    """The restated rule is no tautology: it allows a true deletion."""
    node = node_from_object(_node("gone", f"xenorchestra://{POOL_A}/{DELETED}", {}))
    assert deletion_allowed(node) is None
    assert deletion_allowed(node_from_object(_node("x", f"xenorchestra:///{DELETED}", {})))
