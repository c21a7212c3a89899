"""Applying objects to the real API server the way ``kubectl apply --server-side
--dry-run=server`` does: resolve each kind by discovery, then a server-side
apply PATCH with ``dryRun=All`` and strict field validation, so the server runs
defaulting, validation and admission and refuses unknown or duplicate fields,
yet stores nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from adapters.kubernetes import ApiError, KubeClient

APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "xoccm-packaging-tests"

#: The Prometheus operator's kinds the chart renders, reduced to what the API server
#: needs to serve them: any spec is accepted (the real CRDs are not needed to dry-run).
MONITORING_KINDS = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}


def monitoring_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


async def ensure_monitoring_crds(kube: KubeClient, *, within: float = 20.0) -> None:
    """Create the ServiceMonitor and PodMonitor CRDs (once per control plane) and
    wait until the API server serves both kinds."""
    collection = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for kind, plural in MONITORING_KINDS.items():
        try:
            await kube.request("POST", collection, body=monitoring_crd(kind, plural))
        except ApiError as err:
            if not err.already_exists:
                raise
    async with asyncio.timeout(within):
        while True:
            try:
                found = await kube.request("GET", "/apis/monitoring.coreos.com/v1")
                served = {r["kind"] for r in found["resources"] if "/" not in r["name"]}
                if served >= MONITORING_KINDS.keys():
                    return
            except ApiError as err:
                if not err.not_found:
                    raise
            await asyncio.sleep(0.1)


class Discovery:
    """apiVersion + kind -> (collection name, namespaced), from the server itself."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        self._groups: dict[str, dict[str, tuple[str, bool]]] = {}

    async def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        if api_version not in self._groups:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            found = await self._kube.request("GET", base)
            self._groups[api_version] = {
                r["kind"]: (r["name"], bool(r["namespaced"]))
                for r in found["resources"]
                if "/" not in r["name"]
            }
        kinds = self._groups[api_version]
        if kind not in kinds:
            raise LookupError(f"the API server does not serve {kind} in {api_version}")
        return kinds[kind]

    async def path(self, obj: Mapping[str, Any]) -> str:
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        plural, namespaced = await self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{meta['namespace']}"
        return f"{base}/{plural}/{meta['name']}"


async def dry_run_apply(
    kube: KubeClient, discovery: Discovery, obj: Mapping[str, Any]
) -> dict[str, Any]:
    """Server-side apply ``obj`` with dryRun=All; the object the server would store."""
    return await kube.request(
        "PATCH",
        await discovery.path(obj),
        query=[
            ("dryRun", "All"),
            ("fieldManager", FIELD_MANAGER),
            ("fieldValidation", "Strict"),
            ("force", "true"),
        ],
        body=dict(obj),
        content_type=APPLY_PATCH,
    )
