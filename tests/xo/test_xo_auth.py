"""Authentication: cookie or Basic, and refusals that tell the operator what to fix."""

from __future__ import annotations

import base64

import httpx
import pytest
from pydantic import SecretStr

from adapters.xenorchestra import Credentials, XOInventory
from domain.errors import AuthenticationError
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.xo.support import PASSWORD, TOKEN, USERNAME, World, make_inventory

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"


@pytest.mark.parametrize(
    ("token", "username", "password"),
    [
        pytest.param(TOKEN, None, None, id="token-cookie"),
        pytest.param(None, USERNAME, PASSWORD, id="basic-auth"),
    ],
)
async def test_the_adapter_authenticates_with_a_token_or_a_password(
    xo: FakeXOServer, world: World, token: str | None, username: str | None, password: str | None
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)

    async with make_inventory(xo, token=token, username=username, password=password) as inv:
        await inv.check()
        vm = await inv.get_vm(vm_id=VM_ID)

    assert vm.name_label == "n1"


@pytest.mark.parametrize(
    ("token", "username", "password", "legacy"),
    [
        pytest.param("wrong-token", None, None, False, id="bad-token"),
        pytest.param(None, USERNAME, "wrong-password", False, id="bad-password"),
        pytest.param("wrong-token", None, None, True, id="old-xo-plain-text-401"),
    ],
)
async def test_refused_credentials_raise_an_authentication_error_with_the_admin_hint(
    xo: FakeXOServer,
    token: str | None,
    username: str | None,
    password: str | None,
    legacy: bool,
) -> None:
    xo.faults.set(legacy_auth_errors=legacy)

    async with make_inventory(xo, token=token, username=username, password=password) as inv:
        with pytest.raises(AuthenticationError) as caught:
            await inv.check()

    message = str(caught.value)
    assert "401" in message
    assert "admin" in message
    assert xo.requests.snapshot() == {"GET /vms": 1}  # never retried


async def test_a_non_admin_token_is_refused_with_403_and_the_admin_hint(
    xo: FakeXOServer, world: World
) -> None:
    xo.state.add_vm(name_label="n1", vm_id=VM_ID, pool_id=world.pool_a)
    xo.auth.add_token(token="viewer-token", admin=False)

    async with make_inventory(xo, token="viewer-token") as inv:
        with pytest.raises(AuthenticationError) as caught:
            await inv.get_vm(vm_id=VM_ID)

    assert "403" in str(caught.value)
    assert "admin" in str(caught.value)


async def test_a_token_revoked_while_running_turns_reads_into_authentication_errors(
    xo: FakeXOServer, world: World, inventory: XOInventory
) -> None:
    await inventory.snapshot()
    xo.auth.revoke_token(TOKEN)

    with pytest.raises(AuthenticationError):
        await inventory.snapshot()


def test_credentials_never_show_their_secret_in_repr_or_str() -> None:
    token = Credentials(token=SecretStr(TOKEN))
    basic = Credentials(username=USERNAME, password=SecretStr(PASSWORD))

    for creds in (token, basic):
        shown = repr(creds) + str(creds)
        assert TOKEN not in shown
        assert PASSWORD not in shown
    assert basic.headers()["Authorization"].startswith("Basic ")
    assert token.headers() == {"Cookie": f"authenticationToken={TOKEN}"}


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({}, id="nothing"), pytest.param({"username": USERNAME}, id="user-only")],
)
def test_credentials_need_a_token_or_a_full_username_and_password(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="token or a username"):
        Credentials(**kwargs)  # type: ignore[arg-type]


# -- the fake XO's authentication, checked over raw HTTP ------------------------------------
def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        pytest.param({}, 401, "invalid credentials", id="none"),
        pytest.param({"Cookie": f"authenticationToken={TOKEN}"}, 200, None, id="cookie"),
        pytest.param({"Cookie": f"token={TOKEN}"}, 200, None, id="short-cookie-name"),
        pytest.param({"Authorization": _basic(USERNAME, PASSWORD)}, 200, None, id="basic"),
        pytest.param(
            {"Authorization": f"Bearer {TOKEN}"}, 401, "invalid credentials", id="bearer-refused"
        ),
        pytest.param(
            {"Cookie": f"authenticationToken={TOKEN}", "Authorization": _basic(USERNAME, PASSWORD)},
            400,
            "Having multiple authentication methods is not supported, please choose one",
            id="both-methods",
        ),
    ],
)
async def test_fake_xo_authenticates_like_xo(
    xo: FakeXOServer, headers: dict[str, str], status: int, error: str | None
) -> None:
    async with httpx.AsyncClient(base_url=xo.url) as client:
        response = await client.get("/rest/v0/vms", headers=headers)

    assert response.status_code == status
    if error is not None:
        assert response.json() == {"error": error}
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="xo"'


async def test_fake_xo_throttles_password_retries_after_a_failure(xo: FakeXOServer) -> None:
    async with httpx.AsyncClient(base_url=xo.url) as client:
        failed = await client.get(
            "/rest/v0/vms", headers={"Authorization": _basic(USERNAME, "bad")}
        )
        throttled = await client.get(
            "/rest/v0/vms", headers={"Authorization": _basic(USERNAME, PASSWORD)}
        )

    assert failed.status_code == 401
    assert throttled.status_code == 500
    assert throttled.json() == {"error": "too fast authentication tries"}


async def test_fake_xo_ping_needs_no_credentials(xo: FakeXOServer) -> None:
    async with httpx.AsyncClient(base_url=xo.url) as client:
        response = await client.get("/rest/v0/ping")

    assert response.status_code == 200
    assert response.json()["result"] == "pong"
