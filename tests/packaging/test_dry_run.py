"""Every object of every chart combination and every plain manifest is accepted
by a real kube-apiserver (server-side apply, dry run, strict field validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes import ApiError, KubeClient

from .apiserver import Discovery, dry_run_apply, ensure_monitoring_crds
from .chart import COMBINATIONS, PLAIN_MANIFESTS, Obj, manifest, render

pytestmark = pytest.mark.integration


async def stored(kube: KubeClient, discovery: Discovery, docs: list[Obj]) -> list[bool]:
    """Which of ``docs`` exist on the server (the session's API server is shared)."""
    found = []
    for doc in docs:
        try:
            await kube.request("GET", await discovery.path(doc))
            found.append(True)
        except ApiError as err:
            if not err.not_found:
                raise
            found.append(False)
    return found


async def dry_run_all(kube: KubeClient, docs: list[Obj]) -> list[dict[str, Any]]:
    """Dry-run apply every document; fails on the first refusal, and if the dry
    run stored anything."""
    if any(d["apiVersion"].startswith("monitoring.coreos.com/") for d in docs):
        await ensure_monitoring_crds(kube)
    discovery = Discovery(kube)
    before = await stored(kube, discovery, docs)
    answers = []
    for doc in docs:
        try:
            answer = await dry_run_apply(kube, discovery, doc)
        except ApiError as err:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {err}")
        assert (answer["kind"], answer["metadata"]["name"]) == (
            doc["kind"],
            doc["metadata"]["name"],
        )
        answers.append(answer)
    assert await stored(kube, discovery, docs) == before, "a dry run stored something"
    return answers


@pytest.mark.parametrize("combination", [pytest.param(c, id=c) for c in COMBINATIONS])
async def test_the_api_server_accepts_every_object_the_chart_renders(
    kube: KubeClient, helm: Path, combination: str
) -> None:
    docs = render(helm, combination)
    answers = await dry_run_all(kube, docs)
    assert {a["kind"] for a in answers} >= {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    assert any(a["kind"] in ("Deployment", "DaemonSet") for a in answers)


@pytest.mark.parametrize("path", [pytest.param(p, id=p) for p in PLAIN_MANIFESTS])
async def test_the_api_server_accepts_every_plain_manifest(kube: KubeClient, path: str) -> None:
    docs = manifest(path)
    assert docs, f"{path} holds no object"
    await dry_run_all(kube, docs)
