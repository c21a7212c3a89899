"""The spec checker itself: it fails when the fake or the adapter drifts from XO's spec.

Each case takes a real exchange with the fake XO (which passes), breaks one
thing the way a bug would (a renamed field, a wrong type, an undeclared
status, a query parameter XO does not know), and expects the checker to
name it. A checker that passed these would make the spec suite worthless.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from adapters.xenorchestra.parsing import VM_FIELDS
from entrypoints.testkits.fake_xo import FakeXOServer
from entrypoints.testkits.fake_xo.exchanges import Exchange
from tests.spec.xo_spec import XOSpec, read_as_published
from tests.xo.support import HOST_A1, TOKEN, build_world

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"


@pytest.fixture
async def xo() -> AsyncIterator[FakeXOServer]:
    async with FakeXOServer(token=TOKEN) as server:
        build_world(server)
        server.state.add_vm(name_label="node-1", vm_id=VM_ID, host_id=HOST_A1)
        server.exchanges.start()
        yield server


async def exchange_of(xo: FakeXOServer, path: str, **params: str) -> Exchange:
    cookie = {"Cookie": f"authenticationToken={TOKEN}"}
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=cookie) as client:
        await client.get(path, params=params)
    return xo.exchanges.exchanges[-1]


def with_body(exchange: Exchange, change: Callable[[Any], None]) -> Exchange:
    assert exchange.body is not None
    body = json.loads(exchange.body)
    change(body)
    return dataclasses.replace(exchange, body=json.dumps(body).encode())


def rename(obj: dict[str, Any], old: str, new: str) -> None:
    obj[new] = obj.pop(old)


async def test_a_true_exchange_passes(xo: FakeXOServer, xo_spec: XOSpec) -> None:
    exchange = await exchange_of(xo, f"/vms/{VM_ID}")

    assert xo_spec.exchange_problems([exchange]) == []


@pytest.mark.parametrize(
    ("field", "renamed", "expected"),
    [
        pytest.param("power_state", "powerState", "'power_state' is a required property"),
        pytest.param("$container", "container", "'$container' is a required property"),
        pytest.param("mainIpAddress", "mainIPAddress", "'mainIPAddress' is not a property"),
    ],
)
async def test_a_renamed_field_of_a_vm_fails(
    xo: FakeXOServer, xo_spec: XOSpec, field: str, renamed: str, expected: str
) -> None:
    exchange = await exchange_of(xo, f"/vms/{VM_ID}")

    problems = xo_spec.response_problems(with_body(exchange, lambda b: rename(b, field, renamed)))

    assert any(expected in p for p in problems), problems


async def test_a_renamed_field_in_a_picked_list_fails(xo: FakeXOServer, xo_spec: XOSpec) -> None:
    exchange = await exchange_of(xo, "/vms", fields=",".join(VM_FIELDS))
    assert xo_spec.response_problems(exchange) == []

    broken = with_body(exchange, lambda b: rename(b[0], "name_label", "nameLabel"))

    assert xo_spec.response_problems(broken) == [
        "GET /rest/v0/vms -> 200: at 0/: 'nameLabel' is not a property of the spec's schema"
    ]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param(f"/hosts/{HOST_A1}", "$pool", id="host"),
        pytest.param("/pools", "id", id="pool"),
    ],
)
async def test_a_renamed_field_of_a_host_or_pool_fails(
    xo: FakeXOServer, xo_spec: XOSpec, path: str, field: str
) -> None:
    if path == "/pools":
        exchange = await exchange_of(xo, path, fields="id,name_label")
        broken = with_body(exchange, lambda b: rename(b[0], field, "ID"))
    else:
        exchange = await exchange_of(xo, path)
        broken = with_body(exchange, lambda b: rename(b, field, "pool"))

    assert xo_spec.response_problems(broken) != []


async def test_a_wrong_type_fails(xo: FakeXOServer, xo_spec: XOSpec) -> None:
    exchange = await exchange_of(xo, f"/vms/{VM_ID}")

    def stringify(body: dict[str, Any]) -> None:
        body["CPUs"]["max"] = "2"

    problems = xo_spec.response_problems(with_body(exchange, stringify))

    assert any("at CPUs/max" in p and "not of type 'number'" in p for p in problems), problems


async def test_a_dotted_pick_is_not_the_spec_s_vm(xo: FakeXOServer, xo_spec: XOSpec) -> None:
    """Why the adapter asks for whole ``CPUs`` and ``memory``."""
    exchange = await exchange_of(xo, "/vms", fields="id,CPUs.max,memory.size")

    problems = xo_spec.response_problems(exchange)

    assert any("'number' is a required property" in p for p in problems), problems


async def test_an_undeclared_status_fails(xo: FakeXOServer, xo_spec: XOSpec) -> None:
    exchange = await exchange_of(xo, f"/vms/{VM_ID}")

    problems = xo_spec.response_problems(dataclasses.replace(exchange, status=500))

    [problem] = problems
    assert problem.startswith(f"GET /rest/v0/vms/{VM_ID} -> 500: status 500 is not declared")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param((("field", "id"),), "query parameter 'field' is not one of", id="unknown"),
        pytest.param((("limit", "one"),), "Query parameter error: limit", id="wrong-type"),
        pytest.param((("fields", "id"), ("fields", "id")), "sent twice", id="twice"),
    ],
)
async def test_a_query_xo_does_not_take_fails(
    xo: FakeXOServer, xo_spec: XOSpec, query: tuple[tuple[str, str], ...], expected: str
) -> None:
    exchange = await exchange_of(xo, "/vms", fields="id")

    problems = xo_spec.request_problems(dataclasses.replace(exchange, query=query))

    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param((), "got none", id="none"),
        pytest.param(
            (("Cookie", "authenticationToken=t"), ("Authorization", "Basic eDp5")),
            "got ['cookie authenticationToken', 'basic']",
            id="both",
        ),
        pytest.param((("Authorization", "Bearer t"),), "'Bearer' is no scheme", id="bearer"),
    ],
)
async def test_a_request_without_one_of_the_spec_s_auth_schemes_fails(
    xo: FakeXOServer, xo_spec: XOSpec, headers: tuple[tuple[str, str], ...], expected: str
) -> None:
    exchange = await exchange_of(xo, "/vms", fields="id")

    problems = xo_spec.request_problems(dataclasses.replace(exchange, headers=headers))

    assert any(expected in p for p in problems), problems


def test_a_subscription_body_xo_does_not_take_fails(xo_spec: XOSpec) -> None:
    def post(body: dict[str, Any]) -> Exchange:
        return Exchange(
            method="POST",
            path="/rest/v0/events/0d8b28c6-e9bf-4c9d-a382-3c9e0d7cfbff/subscriptions",
            query=(),
            headers=(("Cookie", "authenticationToken=t"), ("Content-Type", "application/json")),
            request_body=json.dumps(body).encode(),
            status=201,
            content_type="application/json",
            body=b'{"id": "VM"}',
        )

    assert xo_spec.exchange_problems([post({"collection": "VM", "fields": ["id"]})]) == []
    assert xo_spec.request_problems(post({"collection": "vms"})) != []
    assert xo_spec.request_problems(post({"collection": "VM", "fields": "id"})) != []
    assert xo_spec.request_problems(post({"fields": ["id"]})) != []


def test_a_typeless_nullable_means_null_and_nothing_else() -> None:
    schema = {"allOf": [{"$ref": "#/x"}], "nullable": True}

    assert read_as_published(schema) == {
        "anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"nullable": True, "enum": [None]}]
    }
    assert read_as_published({"type": "string", "nullable": True}) == {
        "type": "string",
        "nullable": True,
    }


async def test_a_halted_vm_s_null_os_version_passes_and_a_string_fails(
    xo: FakeXOServer, xo_spec: XOSpec
) -> None:
    vm = xo.state.stop_vm(VM_ID)
    assert vm["os_version"] is None
    assert xo_spec.object_problems("Unbrand_XoVm_", vm) == []

    assert xo_spec.object_problems("Unbrand_XoVm_", {**vm, "os_version": "12"}) != []
