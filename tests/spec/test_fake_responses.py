"""Every answer the fake XO gives on the routes the adapter uses, held to XO's spec.

Each case sends one request as the adapter would (its cookie, its field lists)
and checks what the fake recorded of it: the request against the operation,
the status against the statuses the operation declares, the body against the
schema of that status. A field renamed, a type changed, an undeclared status
in the fake fails here, not in production.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.xenorchestra.parsing import HOST_FIELDS, POOL_FIELDS, VM_FIELDS
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.spec.xo_spec import XOSpec
from tests.xo.support import HOST_A1, POOL_A, TOKEN, build_world

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
HALTED_ID = "d5d1c4a3-4c5e-ca7b-6be8-33c824f87571"
UNKNOWN = "00000000-1111-4222-8333-444444444444"
COOKIE = {"Cookie": f"authenticationToken={TOKEN}"}
BAD_COOKIE = {"Cookie": "authenticationToken=not-the-token"}

#: (case id, method, path, query, body, headers, the status the fake must answer)
CASES = [
    ("ping", "GET", "/ping", {}, None, {}, 200),  # the doctor's first question
    ("vms-hrefs", "GET", "/vms", {}, None, COOKIE, 200),
    ("vms-fields", "GET", "/vms", {"fields": ",".join(VM_FIELDS)}, None, COOKIE, 200),
    ("vms-all-fields", "GET", "/vms", {"fields": "*"}, None, COOKIE, 200),
    ("vms-check", "GET", "/vms", {"limit": "1", "fields": "id"}, None, COOKIE, 200),
    (
        "vms-by-name",
        "GET",
        "/vms",
        {"filter": "name_label:/^node\\-1$/", "fields": ",".join(VM_FIELDS)},
        None,
        COOKIE,
        200,
    ),
    ("vm-running", "GET", f"/vms/{VM_ID}", {}, None, COOKIE, 200),
    ("vm-halted", "GET", f"/vms/{HALTED_ID}", {}, None, COOKIE, 200),
    ("vm-unknown", "GET", f"/vms/{UNKNOWN}", {}, None, COOKIE, 404),
    ("hosts-fields", "GET", "/hosts", {"fields": ",".join(HOST_FIELDS)}, None, COOKIE, 200),
    ("hosts-hrefs", "GET", "/hosts", {}, None, COOKIE, 200),
    ("host", "GET", f"/hosts/{HOST_A1}", {}, None, COOKIE, 200),
    ("host-unknown", "GET", f"/hosts/{UNKNOWN}", {}, None, COOKIE, 404),
    ("pools-fields", "GET", "/pools", {"fields": ",".join(POOL_FIELDS)}, None, COOKIE, 200),
    ("pools-all-fields", "GET", "/pools", {"fields": "*"}, None, COOKIE, 200),
    ("pool", "GET", f"/pools/{POOL_A}", {}, None, COOKIE, 200),
    ("pool-unknown", "GET", f"/pools/{UNKNOWN}", {}, None, COOKIE, 404),
    ("vms-bad-token", "GET", "/vms", {"fields": "id"}, None, BAD_COOKIE, 401),
    ("vm-bad-token", "GET", f"/vms/{VM_ID}", {}, None, BAD_COOKIE, 401),
    ("pools-bad-token", "GET", "/pools", {}, None, BAD_COOKIE, 401),
    (
        "subscribe-unknown-connection",
        "POST",
        f"/events/{UNKNOWN}/subscriptions",
        {},
        {"collection": "VM", "fields": ["id", "name_label"]},
        COOKIE,
        404,
    ),
]


@pytest.fixture
async def xo() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(token=TOKEN, ping_interval=0.2) as server:
        build_world(server)
        server.state.add_vm(name_label="node-1", vm_id=VM_ID, host_id=HOST_A1)
        server.state.add_vm(name_label="off", vm_id=HALTED_ID, pool_id=POOL_A, power_state="Halted")
        server.exchanges.start()
        yield server


async def test_the_routes_are_the_spec_s(xo_spec: XOSpec) -> None:
    paths = {"/ping", "/vms", "/vms/{id}", "/hosts", "/hosts/{id}", "/pools", "/pools/{id}"}
    paths |= {"/events", "/events/{id}/subscriptions"}
    assert paths <= set(xo_spec.document["paths"])


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "headers", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_the_fake_answers_as_the_spec_says(
    xo: FakeXOServer,
    xo_spec: XOSpec,
    method: str,
    path: str,
    query: dict[str, str],
    body: object,
    headers: dict[str, str],
    status: int,
) -> None:
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=headers) as client:
        response = await client.request(method, path, params=query, json=body)

    assert response.status_code == status
    [exchange] = xo.exchanges.exchanges
    assert xo_spec.exchange_problems([exchange]) == []


async def test_an_event_stream_and_its_subscriptions_are_the_spec_s(
    xo: FakeXOServer, xo_spec: XOSpec
) -> None:
    async with (
        httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=COOKIE) as client,
        client.stream("GET", "/events") as stream,
    ):
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert await anext(lines) == "event: init"
        data = json.loads((await anext(lines)).removeprefix("data: "))
        for collection, fields in (("VM", VM_FIELDS), ("host", HOST_FIELDS), ("pool", "*")):
            answer = await client.post(
                f"/events/{data['id']}/subscriptions",
                json={"collection": collection, "fields": fields},
            )
            assert answer.status_code == 201

    statuses = sorted((e.method, e.status) for e in xo.exchanges.exchanges)
    assert statuses == [("GET", 200), ("POST", 201), ("POST", 201), ("POST", 201)]
    assert xo_spec.exchange_problems(xo.exchanges.exchanges) == []
