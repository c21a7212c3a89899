"""A 404 proves a deletion only for credentials that see everything: ``admin_view``.

XO answers an ACL-limited token's ``GET /vms/{id}`` for a VM it may not see with
the same 404 as for a deleted VM, while the pool (which it may see) answers 200:
``confirm_absence`` then says "deleted". Before deleting a Node the lifecycle service asks
``admin_view`` (``GET /users/me``, the 307 to the user's own record). These run
the real adapter against the fake XO over HTTP, then the lifecycle service on it.
"""

from __future__ import annotations

import pytest

from adapters.memory import (
    InMemoryEventRecorder,
    InMemoryNodeStore,
)
from domain.errors import PoolUnavailableError, ProtocolError, VMDeletedError
from domain.matching import confirm_absence
from domain.model import Node, Readiness
from domain.options import CCMOptions, DeletionOptions
from domain.policies.lifecycle import LifecycleAction
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.world import World as CCM
from tests.xo.support import TOKEN, World, make_inventory

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
HIDDEN = "0a1b2c3d-0000-4000-8000-000000000001"
LIMITED = "acl-limited-token"


@pytest.mark.parametrize(
    ("admin", "sees", "expected"),
    [
        pytest.param(True, None, True, id="admin"),
        pytest.param(False, [], False, id="acl-limited"),
        pytest.param(False, None, False, id="non-admin"),
    ],
)
async def test_admin_view_reads_the_users_own_permission(
    xo: FakeXOServer, admin: bool, sees: list[str] | None, expected: bool
) -> None:
    xo.auth.add_token(token=LIMITED, admin=admin, sees=sees)
    async with make_inventory(xo, token=LIMITED) as inventory:
        assert await inventory.admin_view() is expected
    assert xo.requests.snapshot() == {"GET /users/me": 1, "GET /users/{id}": 1}


async def test_an_xo_without_the_users_routes_served_admins_only(xo: FakeXOServer) -> None:
    xo.faults.set(users_enabled=False)
    async with make_inventory(xo) as inventory:
        assert await inventory.admin_view() is True


async def test_a_redirect_elsewhere_is_a_protocol_error(xo: FakeXOServer) -> None:
    # Only the user's own path is read: the token never follows XO elsewhere.
    from aiohttp import web

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": "https://evil.example/steal"})

    app = web.Application()
    app.router.add_get("/rest/v0/users/me", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with make_inventory(xo, url=f"http://127.0.0.1:{port}") as inventory:
            with pytest.raises(ProtocolError, match="not to a user"):
                await inventory.admin_view()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("sees_dom0s", [True, False], ids=["sees-control-domains", "pool-only"])
async def test_a_token_limited_by_acls_deletes_no_node_and_says_why(
    xo: FakeXOServer, world: World, sees_dom0s: bool
) -> None:
    """The Warning names the credentials, whether or not the ACLs let the token see
    the pool's control domains (without them, the pool itself is not vouched for)."""
    xo.state.add_vm(name_label="seen", vm_id=VM_ID, pool_id=world.pool_a)
    xo.state.add_vm(name_label="hidden", vm_id=HIDDEN, pool_id=world.pool_a)
    # The admin is demoted while the CCM runs: its token now sees the pool, maybe its
    # control domains (XO vouches for the pool's VMs with them), and one VM.
    dom0s = [c["id"] for c in xo.state.vm_controllers() if c["$pool"] == world.pool_a]
    sees = [world.pool_a, *(dom0s if sees_dom0s else []), VM_ID]
    xo.auth.add_token(token=TOKEN, admin=False, sees=sees)
    nodes, events = InMemoryNodeStore(), InMemoryEventRecorder()
    nodes.create(
        Node(
            name="worker-hidden",
            provider_id=f"xenorchestra://{world.pool_a}/{HIDDEN}",
            readiness=Readiness.FALSE,
        )
    )
    async with make_inventory(xo) as inventory:
        verdict = await confirm_absence(inventory, vm_id=HIDDEN, pools=[world.pool_a])
        # what the 404 and the pool alone say
        assert isinstance(verdict, VMDeletedError if sees_dom0s else PoolUnavailableError)
        lifecycle = CCM(
            options=CCMOptions(deletion=DeletionOptions(confirm_delay=0)),
            inventory=inventory,
            nodes=nodes,
            events=events,
        ).lifecycle
        result = await lifecycle.check_by_name(name="worker-hidden")
    assert result.action is LifecycleAction.DELETION_UNVERIFIED
    assert "worker-hidden" in nodes.nodes
    [event] = events.events
    assert event.reason == "NodeDeletionUnverified"
    assert "not an admin" in event.message
