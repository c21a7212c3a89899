"""What XO's ``/users`` routes do that the CCM relies on, fact by fact.

Before deleting a Node, the CCM asks whether its credentials are an admin's
(``XOInventory.admin_view``): ``GET /users/me``. The spec declares
``GET /users/{id}`` only; XO's compiled sources say the rest. Each test checks
that the package file of the version in use still states its fact, then shows
the fake XO doing the same over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from entrypoints.testkits.fake_xo import FakeXOServer
from tests.spec.test_events_facts import says
from tests.spec.xo_spec import XOSpec
from tests.xo.support import TOKEN

MIDDLEWARE = "users/user.middleware.mjs"
CONTROLLER = "users/user.controller.mjs"
COOKIE = {"authenticationToken": TOKEN}


@pytest.fixture
async def xo() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(token=TOKEN) as server:
        yield server


async def test_me_redirects_to_the_current_user_with_a_307(
    xo_spec: XOSpec, xo: FakeXOServer
) -> None:
    says(
        xo_spec,
        MIDDLEWARE,
        r"const meAliasRegex = /\/users\/me(?=\/|$)/;",
        "res.redirect(307, originalUrl.replace(meAliasRegex, `/users/${currentUser.id}`));",
    )
    says(xo_spec, CONTROLLER, "Middlewares(redirectMeAlias),")
    async with httpx.AsyncClient(base_url=xo.url, cookies=COOKIE) as client:
        answer = await client.get("/rest/v0/users/me")
    assert answer.status_code == 307
    assert answer.headers["location"].startswith("/rest/v0/users/")
    assert not answer.headers["location"].endswith("/me")


async def test_every_user_reads_their_own_record_and_its_permission(
    xo_spec: XOSpec, xo: FakeXOServer
) -> None:
    # Reading another user needs the ``read`` privilege; oneself, none.
    says(xo_spec, CONTROLLER, "action: actionIfNotSelfUser('read'),")
    xo.auth.add_token(token="viewer-token", admin=False, sees=[])
    async with httpx.AsyncClient(base_url=xo.url, follow_redirects=False) as client:
        for token, permission in ((TOKEN, "admin"), ("viewer-token", "none")):
            client.cookies.set("authenticationToken", token)
            moved = await client.get("/rest/v0/users/me")
            record = await client.get(moved.headers["location"])
            assert record.status_code == 200
            assert record.json()["permission"] == permission
            assert xo_spec.object_problems("Unbrand_XoUser_", record.json()) == []
