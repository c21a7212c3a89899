"""Helpers for the ``doctor`` tests: a cluster consistent with the fake XO, and
``doctor`` run through its CLI entry in both outputs."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from adapters.kubernetes import ApiError, KubeClient
from adapters.kubernetes.convert import format_micro_time
from domain import labels
from domain.model import InventorySnapshot, Node, Taint, TaintEffect
from domain.options import CCMOptions
from domain.policies.initialization import plan_initialization
from domain.policies.metadata import instance_metadata
from entrypoints.doctor import main_doctor
from entrypoints.testkits.fake_xo import FakeXOServer
from tests.integration.controlplane import ControlPlane, write_kubeconfig
from tests.integration.kube import (
    RBAC_MANIFEST,
    apply_manifest,
    create_node,
    grant_shipped_roles,
    mint_token,
    unique,
)
from tests.xo.pki import ThrowawayPKI
from tests.xo.support import TOKEN, World, make_inventory

SA_NAME = "xenorchestra-cloud-controller-manager"
SA_NAMESPACE = "kube-system"
LEASE_NAME = "cloud-controller-manager"
LEASE_NAMESPACE = "kube-system"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
HOLDER = "ccm-7d9f_0b6f3a9e-2c11-4c8e-9d21-8a3c1e547f0b"
SYMBOL = {"ok": "✔", "warn": "!", "fail": "✗", "unknown": "?"}
UNINITIALIZED = Taint(
    key=labels.UNINITIALIZED_TAINT_KEY, value="true", effect=TaintEffect.NO_SCHEDULE
)


# -- the Kubernetes side --------------------------------------------------------------
async def reset_cluster(kube: KubeClient) -> None:
    """No nodes, and a Lease a live leader renewed just now."""
    await kube.request("DELETE", "/api/v1/nodes")
    await put_lease(kube)


async def put_lease(
    kube: KubeClient, *, holder: str = HOLDER, renewed_ago: float = 1.0, duration: int = 15
) -> None:
    await delete_lease(kube)
    renewed = format_micro_time(datetime.now(UTC) - timedelta(seconds=renewed_ago))
    await kube.request(
        "POST",
        LEASE_PATH,
        body={
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": renewed,
                "renewTime": renewed,
                "leaseTransitions": 0,
            },
        },
    )


async def delete_lease(kube: KubeClient) -> None:
    try:
        await kube.request("DELETE", f"{LEASE_PATH}/{LEASE_NAME}")
    except ApiError as err:
        if not err.not_found:
            raise


async def ccm_kubeconfig(kube: KubeClient, control_plane: ControlPlane) -> Path:
    """The identity the CCM runs as: deploy/kubernetes/rbac.yaml's ServiceAccount."""
    await apply_manifest(kube, RBAC_MANIFEST)
    # The Lease Role made for the Lease these tests use, as the chart makes it for
    # leaderElection.resourceName.
    await grant_shipped_roles(kube, account=SA_NAME, lease=LEASE_NAME)
    token = await mint_token(kube, namespace=SA_NAMESPACE, service_account=SA_NAME)
    return write_kubeconfig(
        control_plane.workdir / f"{unique('doctor')}.kubeconfig",
        server=control_plane.server,
        ca_file=control_plane.ca_file,
        user=f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}",
        token=token,
    )


async def state_of_cluster(kube: KubeClient) -> dict[str, Any]:
    """Everything doctor could have written: nodes and the Lease (resourceVersions), events."""
    nodes = await kube.request("GET", "/api/v1/nodes")
    lease_rv = ""
    try:
        lease = await kube.request("GET", f"{LEASE_PATH}/{LEASE_NAME}")
        lease_rv = lease["metadata"]["resourceVersion"]
    except ApiError as err:
        if not err.not_found:
            raise
    core = await kube.request("GET", "/api/v1/events")
    new = await kube.request("GET", "/apis/events.k8s.io/v1/events")
    return {
        "nodes": {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in nodes["items"]},
        "lease": lease_rv,
        "events": len(core["items"]) + len(new["items"]),
    }


# -- doctor through its CLI entry -----------------------------------------------------
@dataclass
class Outcome:
    """One doctor run in each output; they must agree."""

    code: int
    table: str
    document: dict[str, Any]

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list(self.document["findings"])

    def statuses(self) -> set[str]:
        return {f["status"] for f in self.findings}

    def expect(
        self,
        status: str,
        check: str,
        subject: str = "",
        *phrases: str,
        fix: str = "",
    ) -> dict[str, Any]:
        """The finding (JSON) and its table row say the same thing: return the finding."""
        matches = [
            f
            for f in self.findings
            if f["check"] == check
            and subject in f["subject"]
            and all(p in f["message"] for p in phrases)
        ]
        assert matches, f"no {check} {subject!r} finding with {phrases}:\n{self.table}"
        finding = matches[0]
        assert finding["status"] == status, f"{finding}\n{self.table}"
        assert fix in finding["fix"], finding
        lines = self.table.splitlines()
        rows = [
            i
            for i, line in enumerate(lines)
            if line.startswith(SYMBOL[status])
            and f" {check} " in line
            and subject in line
            and all(p in line for p in phrases)
        ]
        assert rows, f"no table row for {finding}:\n{self.table}"
        if fix and status != "ok":
            assert "fix: " in lines[rows[0] + 1] and fix in lines[rows[0] + 1], self.table
        return finding


async def run_doctor(*argv: str) -> tuple[int, str]:
    """``main_doctor`` in a thread of its own (it runs its own event loop)."""
    out = io.StringIO()
    code = await asyncio.to_thread(lambda: main_doctor(list(argv), stdout=out))
    return code, out.getvalue()


# -- a cluster consistent with the fake XO ---------------------------------------------
@dataclass
class Cluster:
    kube: KubeClient
    xo: FakeXOServer
    world: World
    pki: ThrowawayPKI
    kubeconfig: Path
    workdir: Path

    def config(self, **overrides: Any) -> Path:
        """A cloud config for the fake XO (https, the test CA); None removes a key."""
        data: dict[str, Any] = {"url": self.xo.url, "token": TOKEN, "caFile": str(self.pki.ca_cert)}
        data.update(overrides)
        data = {k: v for k, v in data.items() if v is not None}
        path = self.workdir / f"{unique('cloud')}.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    async def doctor(
        self, *extra: str, config: Path | None = None, kubeconfig: Path | None = None
    ) -> Outcome:
        """Run doctor twice, as a table and as JSON; both must reach the same verdict."""
        argv = [
            "--cloud-config",
            str(config or self.config()),
            "--kubeconfig",
            str(kubeconfig or self.kubeconfig),
            "--timeout",
            "5s",
            *extra,
        ]
        code, table = await run_doctor(*argv)
        json_code, text = await run_doctor(*argv, "--output", "json")
        document = json.loads(text)
        assert code == json_code == document["exit_code"], (code, json_code, table)
        assert table.rstrip().endswith(f"(exit {code})"), table
        assert TOKEN not in table and TOKEN not in text
        return Outcome(code, table, document)

    async def snapshot(self) -> InventorySnapshot:
        async with make_inventory(self.xo, ca_file=self.pki.ca_cert) as inventory:
            return await inventory.snapshot()

    def add_vm(self, name: str, *, host_id: str | None = None, **fields: Any) -> str:
        """A VM running on host A1 (pool A) unless told otherwise; its id."""
        host_id = host_id or self.world.host_a1
        pool_id = self.world.pool_b if host_id == self.world.host_b1 else self.world.pool_a
        return str(
            self.xo.state.add_vm(name_label=name, host_id=host_id, pool_id=pool_id, **fields)["id"]
        )

    async def add_initialized_nodes(
        self,
        vms: Mapping[str, str],
        *,
        ready: str | None = "True",
        options: CCMOptions | None = None,
    ) -> None:
        """Nodes (name -> VM id) exactly as the CCM (with ``options``) leaves them after
        initialization."""
        snap = await self.snapshot()
        bodies = [initialized_node(name, vm_id, snap, options) for name, vm_id in vms.items()]
        for chunk in _chunks(bodies, 25):
            await asyncio.gather(
                *(
                    create_node(
                        self.kube,
                        node.name,
                        uninitialized=False,
                        ready=ready,
                        labels={
                            k: v for k, v in node.labels.items() if k != "kubernetes.io/hostname"
                        },
                        provider_id=node.provider_id,
                        system_uuid=node.system_uuid,
                    )
                    for node in chunk
                )
            )

    async def add_node(self, name: str, **fields: Any) -> None:
        """A node as kubelet registers it (see tests.integration.kube.node_object)."""
        await create_node(self.kube, name, **fields)


def initialized_node(
    name: str, vm_id: str, snap: InventorySnapshot, options: CCMOptions | None = None
) -> Node:
    vm = snap.vms[vm_id]
    registered = Node(
        name=name,
        system_uuid=vm_id,
        labels=MappingProxyType({"kubernetes.io/hostname": name}),
        taints=(UNINITIALIZED,),
    )
    metadata = instance_metadata(
        vm=vm,
        host=snap.hosts.get(vm.container),
        pool=snap.pools.get(vm.pool_id),
        node=registered,
        options=options,
    )
    return plan_initialization(node=registered, metadata=metadata).change.apply(registered)


def _chunks(items: Sequence[Node], size: int) -> Iterable[Sequence[Node]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
