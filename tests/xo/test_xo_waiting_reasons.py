"""Why a node waits, through the real XO adapter: each XO failure reaches the Node's
Warning event as the domain's cause (the adapter's errors are the domain's types)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.memory import InMemoryEventRecorder, InMemoryNodeStore
from adapters.xenorchestra import XOInventory
from adapters.xenorchestra.http import TLSError
from domain import labels as L
from domain.errors import (
    AuthenticationError,
    CCMError,
    TLSHandshakeError,
    UnavailableError,
    VMNotFoundError,
)
from domain.model import Node, Taint, TaintEffect
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.world import World as CCM
from tests.xo.pki import ThrowawayPKI, make_pki
from tests.xo.support import POOL_A, TOKEN, World, make_inventory

VM_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
UNINITIALIZED = Taint(key=L.UNINITIALIZED_TAINT_KEY, effect=TaintEffect.NO_SCHEDULE)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def attempt(inventory: XOInventory, raises: type[CCMError]) -> list[tuple[str, str]]:
    """One registration attempt of a node waiting for VM_ID: the events it recorded."""
    nodes = InMemoryNodeStore()
    events = InMemoryEventRecorder()
    nodes.create(Node(name="worker-1", uid="u1", system_uuid=VM_ID, taints=(UNINITIALIZED,)))
    service = CCM(options=None, inventory=inventory, nodes=nodes, events=events).registration
    with pytest.raises(raises):
        await service.sync(name="worker-1")
    assert nodes.nodes["worker-1"].has_taint(L.UNINITIALIZED_TAINT_KEY)
    return [(e.reason, e.message) for e in events.events]


async def test_an_untrusted_certificate_is_the_domains_tls_failure(pki: ThrowawayPKI) -> None:
    async with (
        FakeXOServer(token=TOKEN, ssl_context=pki.server_context()) as xo,
        make_inventory(xo, ca_file=pki.other_ca_cert) as inventory,
    ):
        ((reason, message),) = await attempt(inventory, TLSHandshakeError)

    assert issubclass(TLSError, TLSHandshakeError)
    assert reason == "XenOrchestraTLSFailed"
    assert "TLS handshake" in message and "caFile" in message


async def test_a_revoked_token_is_named(xo: FakeXOServer, world: World) -> None:
    xo.auth.revoke_token(TOKEN)
    async with make_inventory(xo) as inventory:
        ((reason, message),) = await attempt(inventory, AuthenticationError)

    assert reason == "XenOrchestraAuthRefused"
    assert "401" in message


async def test_an_xo_that_keeps_failing_is_unreachable_with_the_last_failure(
    xo: FakeXOServer, world: World
) -> None:
    xo.faults.set(error_rate=1.0, error_status=503)
    async with make_inventory(xo) as inventory:
        ((reason, message),) = await attempt(inventory, UnavailableError)

    assert reason == "XenOrchestraUnreachable"
    assert message.startswith(
        "Waiting to initialize: Xen Orchestra did not answer GET /vms/{id}: 503"
    )
    assert "attempt" not in message  # the same words at every attempt


async def test_a_vm_xo_does_not_know_is_named_with_what_was_tried(
    inventory: XOInventory, world: World
) -> None:
    ((reason, message),) = await attempt(inventory, VMNotFoundError)

    assert reason == "VMNotFound"
    assert f"systemUUID {VM_ID}" in message and "little-endian systemUUID" in message


@pytest.fixture
async def unreachable() -> AsyncIterator[XOInventory]:
    """An XO address where nothing listens (a port just closed)."""
    async with FakeXOServer(token=TOKEN) as xo:
        url = xo.url
    async with make_inventory(xo, url=url) as inventory:
        yield inventory


async def test_nothing_listening_is_unreachable(unreachable: XOInventory) -> None:
    ((reason, message),) = await attempt(unreachable, UnavailableError)

    assert reason == "XenOrchestraUnreachable"
    assert "ConnectError" in message
    assert POOL_A not in message
