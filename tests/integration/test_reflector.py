"""The list+watch loop against a real server: a compacted resourceVersion (410 Gone)
makes it re-list and carry on.

ConfigMaps are the subject because the test control plane serves their
watches straight from etcd (``--watch-cache-sizes=configmaps#0``): compacting
etcd then really expires old resourceVersions. Nodes keep the API server's
watch cache, as in production, and use this very Reflector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from adapters.kubernetes import KubeClient, Reflector, unconverted

from .controlplane import ControlPlane
from .kube import unique
from .waiting import until

pytestmark = pytest.mark.integration


async def test_reflector_relists_when_its_resource_version_was_compacted(
    kube: KubeClient, control_plane: ControlPlane
) -> None:
    namespace = "default"
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    prefix = unique("cm")
    state: dict[str, dict[str, Any]] = {}
    syncs: list[int] = []

    def on_sync(items: Sequence[dict[str, Any]]) -> None:
        state.clear()
        state.update({i["metadata"]["name"]: i for i in items})
        syncs.append(len(items))

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            state.pop(obj["metadata"]["name"], None)
        else:
            state[obj["metadata"]["name"]] = obj

    async def create(name: str) -> None:
        await kube.request("POST", path, body={"metadata": {"name": name}, "data": {"k": "v"}})

    await create(f"{prefix}-a")
    reflector = Reflector(
        kube, path=path, convert=unconverted, on_sync=on_sync, on_event=on_event, page_size=2
    )
    task = asyncio.create_task(reflector.run())
    try:
        await until(lambda: f"{prefix}-a" in state)
        old_version = reflector.resource_version
        await create(f"{prefix}-b")
        await create(f"{prefix}-b2")
        await until(lambda: f"{prefix}-b2" in state)
        # a watch from old_version starts at old_version + 1: compact past it
        assert control_plane.compact_etcd() > int(old_version) + 1

        # resume from a version etcd no longer has, as after a long disconnect
        reflector.resource_version = old_version
        await reflector.reconnect()
        await until(lambda: reflector.lists == 2)
        assert reflector.last_error is not None and reflector.last_error.gone
        await create(f"{prefix}-c")
        await until(lambda: f"{prefix}-c" in state)
        assert {f"{prefix}-a", f"{prefix}-b", f"{prefix}-b2", f"{prefix}-c"} <= set(state)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_reflector_lists_in_pages_and_converts_each_page_as_it_comes(
    kube: KubeClient,
) -> None:
    """Holding every raw page until the last one was the CCM's peak memory at
    5,000 Nodes: each page is converted (and let go) before the next is asked for."""
    namespace = "default"
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    names = {unique("page") for _ in range(5)}
    for name in names:
        await kube.request("POST", path, body={"metadata": {"name": name}})
    listed: list[set[str]] = []
    pages_asked_at_convert: list[int] = []

    def name_of(obj: dict[str, Any]) -> str | None:
        pages_asked_at_convert.append(kube.requests["GET"] - before)
        name = obj["metadata"]["name"]
        return name if name in names else None  # None: left out of the list

    reflector: Reflector[str] = Reflector(
        kube,
        path=path,
        convert=name_of,
        on_sync=lambda items: listed.append(set(items)),
        on_event=lambda kind, obj: None,
        page_size=2,
    )
    before = kube.requests["GET"]
    task = asyncio.create_task(reflector.run())
    try:
        await until(lambda: bool(listed))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert listed[0] == names
    pages = max(pages_asked_at_convert)
    assert pages >= 3  # at least three pages of two
    # page k converted while k pages had been asked for: never after the last one
    assert sorted(set(pages_asked_at_convert)) == list(range(1, pages + 1))


async def test_a_node_version_the_receiver_holds_comes_as_a_bookmark_undecoded(
    kube: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The echo of the CCM's own write is two of a registering node's three watch
    events: the receiver says which versions it holds, and those reach it as
    bookmarks (the watch resumes past them) without their JSON being decoded."""
    from adapters import jsonwire

    from .kube import create_node, delete_node, label_node

    decoded: list[bytes] = []
    real_loads = jsonwire.loads

    def spying_loads(data: bytes | bytearray | str) -> Any:
        decoded.append(bytes(data) if not isinstance(data, str) else data.encode())
        return real_loads(data)

    monkeypatch.setattr(jsonwire, "loads", spying_loads)
    name = unique("echo")
    created = (await create_node(kube, name))["metadata"]
    echo = (await label_node(kube, name, written="by-the-ccm"))["metadata"]
    other = (await label_node(kube, name, written="by-someone-else"))["metadata"]
    held = {echo["resourceVersion"]}
    events: list[tuple[str, str]] = []
    asked: list[tuple[str, str, str]] = []

    def known(node: str, uid: str, version: str) -> bool:
        asked.append((node, uid, version))
        return version in held

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == name:
            events.append((kind, obj["metadata"]["resourceVersion"]))

    reflector = Reflector(
        kube,
        path="/api/v1/nodes",
        convert=unconverted,
        on_sync=lambda items: None,
        on_event=on_event,
        known=known,
    )
    # resumed from the creation: the watch replays both writes, the held one first
    reflector.resource_version = created["resourceVersion"]
    task = asyncio.create_task(reflector.run())
    try:
        await until(lambda: ("MODIFIED", other["resourceVersion"]) in events)
        await until(lambda: int(reflector.resource_version) >= int(other["resourceVersion"]))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await delete_node(kube, name)
    assert (name, echo["uid"], echo["resourceVersion"]) in asked
    assert events == [("MODIFIED", other["resourceVersion"])]
    version_mark = f'"resourceVersion":"{echo["resourceVersion"]}"'.encode()
    watched = [line for line in decoded if line.startswith(b'{"type":')]
    assert [line for line in watched if name.encode() in line]  # the other writer's
    assert not [line for line in watched if name.encode() in line and version_mark in line]
