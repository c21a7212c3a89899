"""An odd Node object costs that object, not the node cache (issue 13, case 6).

The API server validates Nodes, so the odd ones are put into a real list
answer by an HTTP proxy (as a middlebox, an aggregated API or a newer server
could): a Node whose fields have the wrong JSON types is read with those
fields absent, one with no name is skipped with a logged error, and the
cache syncs with every other Node. Before, the whole list failed (an
AttributeError) and was retried forever: the cache never synced and no
controller started.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from loguru import logger

from adapters.kubernetes import KubeClient, KubernetesNodeStore, connect
from domain.model import Readiness

from .controlplane import ControlPlane
from .kube import create_node, delete_node, unique
from .proxy import HttpProxy, Upstream, proxied_kubeconfig

pytestmark = pytest.mark.integration

ODD_OBJECTS: list[Any] = [
    "not an object",
    {"metadata": "not an object either"},
    {"metadata": {"name": 42}},
]


def _odd_but_named(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": 7, "labels": ["a"], "resourceVersion": None},
        "spec": {"taints": "none", "providerID": {"id": 1}},
        "status": {
            "conditions": 7,
            "addresses": [3, {"type": "InternalIP", "address": ["10.0.0.1"]}],
            "nodeInfo": [],
        },
    }


@pytest.fixture
def errors() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


async def test_odd_node_objects_are_skipped_and_the_cache_syncs(
    http_proxy: HttpProxy,
    control_plane: ControlPlane,
    kube: KubeClient,
    tmp_path: Path,
    errors: list[str],
) -> None:
    real, odd = unique("real"), unique("odd")
    await create_node(kube, real)

    async def spoil_the_list(
        request: web.Request, forward: Callable[[], Awaitable[Upstream]]
    ) -> web.Response | None:
        if request.path != "/api/v1/nodes" or request.query.get("watch"):
            return None
        status, _, body = await forward()
        page = json.loads(body)
        page["items"] = [*ODD_OBJECTS, _odd_but_named(odd), *page["items"]]
        return web.Response(status=status, text=json.dumps(page), content_type="application/json")

    http_proxy.rules.append(spoil_the_list)
    client = await connect(str(proxied_kubeconfig(http_proxy, control_plane, tmp_path)), name="c")
    try:
        async with KubernetesNodeStore(client) as store:
            async with asyncio.timeout(10):
                await store.wait_synced()
            names = {n.name for n in await store.list()}
            weird = await store.get(name=odd)
    finally:
        await client.aclose()
        await delete_node(kube, real)

    assert real in names and odd in names
    assert len(names - {real, odd}) == len(names) - 2  # the nameless ones are not there
    assert weird is not None
    assert (weird.uid, weird.provider_id, weird.taints, weird.readiness) == (
        "",
        "",
        (),
        Readiness.MISSING,
    )
    assert weird.addresses == ()
    skipped = [line for line in errors if "skipping" in line]
    assert len(skipped) == len(ODD_OBJECTS), skipped
