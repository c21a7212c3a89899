"""The registration service on the real node store: one initializing pass writes,
the passes after it write nothing at all.

The service comes from the in-memory container with the cluster side swapped for
the real adapters (as an embedder swaps them); XO is the in-memory inventory (the
XO adapter has its own contract tests); what is counted is requests to the real
API server.
"""

from __future__ import annotations

import uuid

import pytest

from adapters.kubernetes import KubeClient, KubernetesEventRecorder, KubernetesNodeStore, connect
from adapters.kubernetes.event_queue import QueuedEventRecorder
from adapters.memory import FakeClock, InMemoryInventory
from domain.model import VM, Host, Pool, PowerState
from domain.ports import EventRecorder, NodeStore
from domain.services import RegistrationService
from entrypoints import adapter_builders as build
from entrypoints.flags.settings import Settings
from entrypoints.in_memory import in_memory_container

from .controlplane import ControlPlane
from .kube import UNINITIALIZED, create_node, get_node, unique
from .waiting import until

pytestmark = pytest.mark.integration


def _world(name: str) -> tuple[InMemoryInventory, str, str]:
    pool, host, vm_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    inventory = InMemoryInventory()
    inventory.add_pool(Pool(id=pool, name_label="Pool A"))
    inventory.add_host(Host(id=host, name_label="host-1", pool_id=pool))
    inventory.add_vm(
        VM(
            id=vm_id,
            name_label=name,
            power_state=PowerState.RUNNING,
            pool_id=pool,
            container=host,
            cpus=2,
            memory_bytes=4 * 1024**3,
            main_ip_address="192.0.2.10",
        )
    )
    return inventory, pool, vm_id


def _registration(
    inventory: InMemoryInventory, nodes: NodeStore, events: EventRecorder
) -> RegistrationService:
    """The container's registration service on these collaborators."""
    container = in_memory_container(Settings(leader_elect=False))
    container.inventory.override(inventory)
    container.nodes.override(nodes)
    container.events.override(events)
    container.clock.override(FakeClock())
    return container.registration()


async def test_initialization_writes_once_and_a_second_pass_writes_nothing(
    kube: KubeClient, control_plane: ControlPlane
) -> None:
    name = unique("e2e")
    inventory, pool, vm_id = _world(name)
    await create_node(kube, name, system_uuid=vm_id)

    ccm = await connect(str(control_plane.admin_kubeconfig), name="ccm")
    async with ccm, KubernetesNodeStore(ccm) as nodes:
        service = _registration(inventory, nodes, KubernetesEventRecorder(ccm))
        await until(lambda: nodes.get(name=name))

        first = ccm.requests.copy()
        await service.sync(name=name)
        initializing = ccm.requests - first
        # one node patch, one status patch, one Synced event
        assert initializing == {"PATCH": 2, "POST": 1}

        second = ccm.requests.copy()
        await service.sync(name=name)
        await service.sync_addresses()
        assert ccm.requests - second == {}, "a pass with nothing to change must not write"

    server = await get_node(kube, name)
    assert server["spec"]["providerID"] == f"xenorchestra://{pool}/{vm_id}"
    assert server["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "2vCPU-4GB"
    assert server["metadata"]["labels"]["topology.k8s.xenorchestra/pool_id"] == pool
    assert UNINITIALIZED not in {t["key"] for t in server["spec"].get("taints") or []}
    assert {"type": "ExternalIP", "address": "192.0.2.10"} in server["status"]["addresses"]


async def test_registration_spends_two_requests_of_the_api_budget_and_events_their_own(
    kube: KubeClient, control_plane: ControlPlane
) -> None:
    """As the container wires it: one node patch and one status patch on the
    ``--kube-api-qps`` client; the Synced event on the events' own client, later."""
    name = unique("budget")
    inventory, _, vm_id = _world(name)
    await create_node(kube, name, system_uuid=vm_id)

    ccm = await connect(str(control_plane.admin_kubeconfig), name="ccm")
    events_client = build.event_client(client=ccm, settings=Settings())
    events = await anext(events_client)
    recorder = QueuedEventRecorder(KubernetesEventRecorder(events))
    try:
        async with KubernetesNodeStore(ccm) as nodes:
            service = _registration(inventory, nodes, recorder)
            await until(lambda: nodes.get(name=name))
            first = ccm.requests.copy()
            await service.sync(name=name)
            assert ccm.requests - first == {"PATCH": 2}
            await recorder.flush()
            assert events.requests == {"POST": 1}
            assert ccm.requests - first == {"PATCH": 2}
    finally:
        await recorder.aclose()
        await events_client.aclose()
        await ccm.aclose()
