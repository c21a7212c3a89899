"""The fake XO speaks XO's REST API: collections, objects, errors, events, control."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from entrypoints.testkits.fake_xo import (
    FakeXOControlClient,
    FakeXOControlError,
    FakeXOServer,
    FakeXOState,
    samples,
)
from tests.xo.support import TOKEN, World

VM_ID = "f07ab729-c0e8-721c-45ec-f11276377030"
AUTH = {"Cookie": f"authenticationToken={TOKEN}"}


@pytest.fixture
async def api(xo: FakeXOServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=xo.url + "/rest/v0", headers=AUTH) as client:
        yield client


@pytest.fixture
def vm(xo: FakeXOServer, world: World) -> dict[str, Any]:
    return xo.state.add_vm(
        name_label="Web (1)", vm_id=VM_ID, pool_id=world.pool_a, host_id=world.host_a2, tags=["k8s"]
    )


# -- objects built from the samples ---------------------------------------------------
def test_sample_world_ids_are_consistent() -> None:
    state = FakeXOState.from_samples()
    (pool,) = state.all_visible("pool")
    (host,) = state.all_visible("host")
    (vm,) = state.all_visible("VM")

    assert pool["id"] == vm["$pool"] == host["$pool"] == pool["$pool"] == vm["$poolId"]
    assert pool["master"] == host["id"] == vm["$container"]
    assert set(samples.VM_RUNNING) <= set(vm)  # every field a real running VM has


def test_a_stopped_vm_looks_like_the_halted_sample(xo: FakeXOServer, vm: dict[str, Any]) -> None:
    halted = xo.state.stop_vm(VM_ID)

    assert set(halted) == set(samples.VM_HALTED)
    assert halted["$container"] == halted["$pool"]
    assert halted["addresses"] == {}
    assert "mainIpAddress" not in halted


# -- collections -------------------------------------------------------------------------
async def test_a_list_without_fields_is_an_array_of_urls(
    api: httpx.AsyncClient, vm: dict[str, Any]
) -> None:
    response = await api.get("/vms")

    assert response.json() == [f"/rest/v0/vms/{VM_ID}"]


async def test_fields_star_gives_full_objects_with_href(
    api: httpx.AsyncClient, vm: dict[str, Any]
) -> None:
    (item,) = (await api.get("/vms", params={"fields": "*"})).json()

    assert item == {**vm, "href": f"/rest/v0/vms/{VM_ID}"}


async def test_fields_pick_keys_and_dotted_paths_and_drop_unknown_ones(
    api: httpx.AsyncClient, vm: dict[str, Any]
) -> None:
    params = {"fields": "id,CPUs.max,memory.size,$pool,nonexistent,CPUs.nope"}

    (item,) = (await api.get("/vms", params=params)).json()

    assert item == {
        "id": VM_ID,
        "CPUs": {"max": 2},
        "memory": {"size": 4 * 1024**3},
        "$pool": vm["$pool"],
        "href": f"/rest/v0/vms/{VM_ID}",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"filter": "name_label:web"}, 1, id="filter-substring"),
        pytest.param({"filter": "name_label:/^Web \\(1\\)$/"}, 1, id="filter-regex"),
        pytest.param({"filter": "tags:k8s power_state:Halted"}, 0, id="filter-and"),
        pytest.param({"limit": "0"}, 0, id="limit-zero"),
        pytest.param({"limit": "1", "filter": "name_label:node"}, 1, id="limit-after-filter"),
        pytest.param({"limit": "5"}, 4, id="limit-above-count"),
    ],
)
async def test_filter_applies_before_limit(
    xo: FakeXOServer,
    api: httpx.AsyncClient,
    vm: dict[str, Any],
    world: World,
    params: dict[str, str],
    expected: int,
) -> None:
    xo.state.populate(count=3, pool_id=world.pool_b, prefix="node")

    response = await api.get("/vms", params=params)

    assert response.status_code == 200
    assert len(response.json()) == expected


async def test_pool_filter_with_dollar_pool(
    xo: FakeXOServer, api: httpx.AsyncClient, world: World
) -> None:
    in_b = {v["id"] for v in xo.state.populate(count=2, pool_id=world.pool_b)}
    xo.state.populate(count=2, pool_id=world.pool_a)

    items = (
        await api.get("/vms", params={"filter": f"$pool:{world.pool_b}", "fields": "id"})
    ).json()

    assert {i["id"] for i in items} == in_b


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({"filter": "name_label:/x"}, 400, id="filter-parse-error"),
        pytest.param({"limit": "many"}, 422, id="bad-limit"),
    ],
)
async def test_bad_query_parameters_are_client_errors(
    api: httpx.AsyncClient, world: World, params: dict[str, str], status: int
) -> None:
    response = await api.get("/vms", params=params)

    assert response.status_code == status
    assert "error" in response.json()


async def test_ndjson_streams_one_document_per_line(
    api: httpx.AsyncClient, vm: dict[str, Any], world: World
) -> None:
    response = await api.get("/hosts", params={"fields": "id", "ndjson": "true"})

    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert {line["id"] for line in lines} == {world.host_a1, world.host_a2, world.host_b1}


async def test_lists_are_gzipped_when_the_client_accepts_it(
    api: httpx.AsyncClient, vm: dict[str, Any]
) -> None:
    response = await api.get("/vms", params={"fields": "*"}, headers={"Accept-Encoding": "gzip"})

    assert response.headers.get("content-encoding") == "gzip"
    assert response.json()[0]["id"] == VM_ID


# -- objects -----------------------------------------------------------------------------
async def test_an_object_by_id_has_no_href(api: httpx.AsyncClient, vm: dict[str, Any]) -> None:
    response = await api.get(f"/vms/{VM_ID}")

    assert response.json() == vm
    assert "href" not in response.json()


@pytest.mark.parametrize(
    ("path", "type_"),
    [
        pytest.param(f"/vms/{VM_ID.replace('f07', 'e07')}", "VM", id="unknown-vm"),
        pytest.param("/hosts/" + VM_ID, "host", id="vm-id-as-host"),
        pytest.param("/pools/" + VM_ID, "pool", id="vm-id-as-pool"),
    ],
)
async def test_unknown_or_other_type_ids_are_404_with_xos_error_body(
    api: httpx.AsyncClient, vm: dict[str, Any], path: str, type_: str
) -> None:
    response = await api.get(path)
    obj_id = path.rsplit("/", 1)[1]

    assert response.status_code == 404
    assert response.json() == {
        "error": f"no such {type_} {obj_id}",
        "data": {"id": obj_id, "type": type_},
    }


async def test_a_disconnected_pool_and_its_objects_answer_404_until_reconnected(
    xo: FakeXOServer, api: httpx.AsyncClient, vm: dict[str, Any], world: World
) -> None:
    xo.state.disconnect_pool(world.pool_a)
    during = [
        (await api.get(p)).status_code
        for p in (f"/vms/{VM_ID}", f"/hosts/{world.host_a1}", f"/pools/{world.pool_a}")
    ]
    listed = (await api.get("/pools", params={"fields": "id"})).json()
    xo.state.reconnect_pool(world.pool_a)

    assert during == [404, 404, 404]
    assert [p["id"] for p in listed] == [world.pool_b]
    assert (await api.get(f"/vms/{VM_ID}")).status_code == 200


async def test_a_non_admin_sees_empty_lists(
    xo: FakeXOServer, vm: dict[str, Any], world: World
) -> None:
    xo.auth.add_token(token="viewer", admin=False)
    async with httpx.AsyncClient(
        base_url=xo.url, headers={"Cookie": "authenticationToken=viewer"}
    ) as client:
        listed = await client.get("/rest/v0/vms")
        one = await client.get(f"/rest/v0/vms/{VM_ID}")

    assert listed.json() == []
    assert one.status_code == 403
    assert one.json()["error"] == "not enough privileges"


# -- events -----------------------------------------------------------------------------
async def _frames(client: httpx.AsyncClient, out: asyncio.Queue[tuple[str, Any]]) -> None:
    async with aconnect_sse(client, "GET", "/events") as source:
        async for frame in source.aiter_sse():
            out.put_nowait((frame.event, json.loads(frame.data)))


async def test_the_event_protocol_follows_xo(
    xo: FakeXOServer, api: httpx.AsyncClient, vm: dict[str, Any], world: World
) -> None:
    frames: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(_frames(api, frames))
    try:
        event, init = await asyncio.wait_for(frames.get(), 5)
        conn = init["id"]
        sub = await api.post(
            f"/events/{conn}/subscriptions", json={"collection": "VM", "fields": ["id", "tags"]}
        )
        xo.state.patch_vm(VM_ID, fields={"name_description": "not picked"})
        xo.state.tag_vm(VM_ID, tags=["k8s", "gpu"])
        update = await asyncio.wait_for(frames.get(), 5)
        replaced = await api.post(
            f"/events/{conn}/subscriptions", json={"collection": "VM", "fields": ["id"]}
        )
        xo.state.delete_vm(VM_ID)
        remove = await asyncio.wait_for(frames.get(), 5)
        ping = await asyncio.wait_for(frames.get(), 5)
        deleted = await api.delete(f"/events/{conn}/subscriptions/VM")
        unknown = await api.post(
            "/events/nope/subscriptions", json={"collection": "VM", "fields": ["id"]}
        )
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    assert event == "init"
    assert (sub.status_code, sub.json()) == (201, {"id": "VM"})
    assert update == ("update", {"$subscription": "VM", "id": VM_ID, "tags": ["k8s", "gpu"]})
    assert replaced.status_code == 201
    assert remove == ("remove", {"$subscription": "VM", "id": VM_ID})
    assert ping[0] == "ping"
    assert deleted.status_code == 204
    assert unknown.status_code == 404


async def test_events_endpoint_is_404_on_an_older_xo(
    xo: FakeXOServer, api: httpx.AsyncClient
) -> None:
    xo.faults.set(events_enabled=False)

    response = await api.get("/events")

    assert response.status_code == 404


# -- control API --------------------------------------------------------------------------
async def test_the_control_api_drives_the_world_over_http(xo: FakeXOServer) -> None:
    async with FakeXOControlClient(xo.url) as control:
        pool = await control.add_pool(name_label="lab")
        host = await control.add_host(pool_id=pool["id"], name_label="h1")
        vm = await control.add_vm(name_label="n1", cpus=4, memory=2 * 1024**3, tags=["a"])
        await control.rename_vm(vm["id"], name_label="n2")
        await control.resize_vm(vm["id"], cpus=8)
        await control.tag_vm(vm["id"], tags=["b"])
        await control.stop_vm(vm["id"])
        await control.start_vm(vm["id"])
        ids = await control.populate(count=3)
        await control.delete_vm(ids[0])
        await control.set_faults(latency=0.01)
        faults = await control.clear_faults()
        counts = await control.request_counts()
        with pytest.raises(FakeXOControlError, match="404 no such VM"):
            await control.stop_vm("nope")
        with pytest.raises(FakeXOControlError, match="422 unknown fault"):
            await control.set_faults(explode=True)

    current = xo.state.objects["VM"][vm["id"]]
    assert xo.state.objects["pool"][pool["id"]]["master"] == host["id"]
    assert (current["name_label"], current["CPUs"]["max"], current["tags"]) == ("n2", 8, ["b"])
    assert (current["power_state"], current["$container"]) == ("Running", host["id"])
    assert len(xo.state.objects["VM"]) == 3
    assert faults["latency"] == 0.0
    assert counts == {}  # the control API is not counted


async def test_hosts_and_pools_are_tagged_over_the_control_api(
    xo: FakeXOServer, api: httpx.AsyncClient
) -> None:
    async with FakeXOControlClient(xo.url) as control:
        pool = await control.add_pool(name_label="lab", tags=["k8s.region=eu"])
        host = await control.add_host(pool_id=pool["id"], name_label="h1", tags=["k8s.zone=a"])
        await control.tag_host(host["id"], tags=["k8s.zone=b", "rack"])
        await control.tag_pool(pool["id"], tags=[])
        with pytest.raises(FakeXOControlError, match="422 tags must be a list of strings"):
            await control.call("POST", f"/hosts/{host['id']}/tags", {"tags": "k8s.zone=c"})
        with pytest.raises(FakeXOControlError, match="404 no such host"):
            await control.tag_host("nope", tags=[])

    hosts = (await api.get("/hosts", params={"fields": "id,tags"})).json()
    pools = (await api.get("/pools", params={"fields": "id,tags"})).json()
    assert {"id": host["id"], "tags": ["k8s.zone=b", "rack"]} in [
        {k: h[k] for k in ("id", "tags")} for h in hosts
    ]
    assert {"id": pool["id"], "tags": []} in [{k: p[k] for k in ("id", "tags")} for p in pools]


async def test_state_round_trips_through_a_json_file(
    xo: FakeXOServer, vm: dict[str, Any], world: World, tmp_path: Path
) -> None:
    xo.state.disconnect_pool(world.pool_b)
    path = tmp_path / "xo.json"

    xo.save_state(path)
    loaded = FakeXOState.load(path)

    assert loaded.to_json() == xo.state.to_json()
    assert loaded.get("VM", VM_ID) == vm


async def test_the_fake_xo_command_serves_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    # Through the console script's own door, as a user types it.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "entrypoints.cli", "fake-xo",
        "--listen", "127.0.0.1:0", "--state", str(state),
        "--token", "cli-token", "--vms", "2", "--ping-interval", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.strip().rsplit(" ", 1)[-1]
        async with httpx.AsyncClient(base_url=url) as client:
            listed = await client.get(
                "/rest/v0/vms", headers={"Cookie": "authenticationToken=cli-token"}
            )
        proc.terminate()
        code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert line.startswith("fake XO listening on http://127.0.0.1:")
    assert len(listed.json()) == 3  # the sample VM and two generated ones
    assert code == 0
    assert len(json.loads(state.read_text())["vms"]) == 3
