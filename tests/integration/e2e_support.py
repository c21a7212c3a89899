"""Shared pieces of the end-to-end scenarios (``test_e2e_*.py``).

Every scenario runs the CCM as operators do, through its console script in
a subprocess, against the real kube-apiserver of ``conftest.control_plane``
and a fake Xen Orchestra reached over HTTP.

Two ways to run the CCM:

- per test: the ``start_ccm`` fixture (``conftest``) starts a
  :class:`~.ccm_process.CCMProcess`, stopped at the test's end, next to an
  in-process ``FakeXOServer`` the test owns;
- per module: :class:`SharedCCM` runs a fake XO and a CCM for every test of a
  module (starting a CCM costs ~1.5 s; a scenario often less). Both are plain
  ``subprocess.Popen`` children: the event loop changes from test to test, so
  no loop may own them. Each test still builds its own pool, hosts and VMs
  (:class:`World`) and its own uniquely named Nodes (:class:`Nodes`), so tests
  stay independent of each other and of their order.

Every CCM gets its own Lease name: the API server is shared with the rest of
the session, and two CCMs on one Lease would leave one of them idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from adapters.kubernetes import ApiError, KubeClient
from adapters.kubernetes.convert import format_time
from domain import labels as L
from entrypoints.testkits.fake_xo import FakeXOControlClient

from .ccm_process import ProcessLog, ccm_argv, console_script
from .controlplane import free_port
from .kube import (
    RBAC_MANIFEST,
    UNINITIALIZED,
    apply_manifest,
    create_node,
    get_node,
    grant_shipped_roles,
    unique,
)
from .waiting import until

GIB = 1024**3
TOKEN = "fake-xo-token"
CLUSTER_ROLE = "system:xenorchestra-cloud-controller-manager"
MERGE_PATCH = "application/merge-patch+json"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
SUBSCRIBE_ENDPOINT = "POST /events/{id}/subscriptions"
#: VM, host and pool: the CCM subscribes to three collections per event stream.
SUBSCRIPTIONS_PER_STREAM = 3

ServiceAccountFactory = Callable[..., Awaitable[Path]]


# -- cloud config ----------------------------------------------------------------
def cloud_config_file(directory: Path, url: str, *, token: str = TOKEN, extra: str = "") -> Path:
    """A cloud config in ``directory`` (a pytest tmp dir: removed with it)."""
    path = directory / f"{unique('cloud-config')}.yaml"
    path.write_text(f"url: {url}\ntoken: {token}\n{extra}", encoding="utf-8")
    return path


def lease_flag(name: str = "") -> str:
    return f"--leader-elect-resource-name={name or unique('xoccm-e2e')}"


async def wait_event_stream(control: FakeXOControlClient, *, at_least: int, within: float) -> None:
    """Until the fake XO has received ``at_least`` subscriptions: the CCM's event
    stream is then open (it only opens while leading), so XO changes reach it."""

    async def subscribed() -> bool:
        counts = await control.request_counts()
        return counts.get(SUBSCRIBE_ENDPOINT, 0) >= at_least

    await until(subscribed, within=within, every=0.05)


async def subscription_count(control: FakeXOControlClient) -> int:
    return (await control.request_counts()).get(SUBSCRIBE_ENDPOINT, 0)


# -- per-module processes ------------------------------------------------------------
def _stop_popen(proc: subprocess.Popen[bytes], within: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class FakeXOProcess:
    """``xenorchestra-cloud-controller-manager fake-xo`` on a free port, driven
    through its ``/_control`` API."""

    def __init__(self, *, ping_interval: float = 5.0) -> None:
        self.ping_interval = ping_interval
        self._log = ProcessLog("xoccm-e2e-fakexo-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, within: float = 20.0) -> FakeXOProcess:
        argv = [
            console_script(),
            "fake-xo",
            "--listen=127.0.0.1:0",
            "--empty",
            f"--token={TOKEN}",
            f"--ping-interval={self.ping_interval}",
        ]
        with self._log.open() as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = re.search(r"fake XO listening on (http://\S+)", self.log)
            if found:
                self.url = found.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the fake XO did not start:\n{self.log[-2000:]}")

    @property
    def log(self) -> str:
        return self._log.read()

    def control(self) -> FakeXOControlClient:
        return FakeXOControlClient(self.url)

    def stop(self) -> None:
        if self.proc is not None:
            _stop_popen(self.proc, 10.0)
        self._log.remove()


class CCMDaemon:
    """The console script for a whole module (``Popen``; see the module docstring)."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        cloud_config: Path,
        flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.argv = ccm_argv(
            kubeconfig=kubeconfig,
            cloud_config=cloud_config,
            port=self.port,
            flags=[lease_flag(), *flags],
        )
        self.env = {**os.environ, **(env or {})}
        self._log = ProcessLog("xoccm-e2e-ccm-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._log.path

    @property
    def log(self) -> str:
        return self._log.read()

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self) -> CCMDaemon:
        with self._log.open() as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self

    async def get(self, path: str) -> httpx.Response:
        # The CCM serves a self-signed certificate (no --tls-cert-file), as Go's does.
        async with httpx.AsyncClient(timeout=2.0, verify=False) as client:
            return await client.get(self.url + path)

    async def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.returncode is not None:
                raise RuntimeError(f"CCM exited with {self.returncode}:\n{self.log[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"CCM not ready within {within}s:\n{self.log[-3000:]}")

    async def metrics(self) -> str:
        return (await self.get("/metrics")).text

    def stop(self, within: float = 15.0) -> int:
        code = 0 if self.proc is None else _stop_popen(self.proc, within)
        self._log.remove()
        return code


class SharedCCM:
    """One CCM for a whole test module, started by the first test that needs it.

    ``identity`` is ``admin`` (the session's system:masters kubeconfig) or
    ``serviceaccount``: a ServiceAccount bound to nothing but the ClusterRole of
    ``deploy/kubernetes/rbac.yaml``, so every request the scenarios make it do
    must be granted by the shipped role.
    """

    def __init__(
        self,
        *,
        xo: FakeXOProcess,
        identity: str,
        admin_kubeconfig: Path,
        workdir: Path,
        extra_config: str = "",
        flags: Sequence[str] = (),
    ) -> None:
        self.xo = xo
        self.identity = identity
        self.admin_kubeconfig = admin_kubeconfig
        self.config = cloud_config_file(workdir, xo.url, extra=extra_config)
        self.flags = tuple(flags)
        self.daemon: CCMDaemon | None = None
        self.failed: str | None = None
        #: the ServiceAccount's user name (``serviceaccount`` identity only)
        self.username = ""

    async def ensure(
        self, *, kube: KubeClient, service_account: ServiceAccountFactory
    ) -> CCMDaemon:
        if self.failed:
            raise RuntimeError(f"the shared CCM could not start earlier: {self.failed}")
        if self.daemon is not None:
            if self.daemon.returncode is not None:
                raise RuntimeError(
                    f"the shared CCM exited with {self.daemon.returncode}:\n"
                    f"{self.daemon.log[-3000:]}"
                )
            return self.daemon
        try:
            kubeconfig = self.admin_kubeconfig
            flags = list(self.flags)
            if self.identity == "serviceaccount":
                await apply_manifest(kube, RBAC_MANIFEST)
                account = unique("xoccm-e2e")
                lease = unique("xoccm-e2e")
                kubeconfig = await service_account(name=account, cluster_role=CLUSTER_ROLE)
                csr_approval = any("cloud-node-csr-approval" in f for f in flags)
                await grant_shipped_roles(
                    kube, account=account, lease=lease, csr_approval=csr_approval
                )
                flags.append(lease_flag(lease))
                self.username = f"system:serviceaccount:kube-system:{account}"
            async with self.xo.control() as control:
                before = await subscription_count(control)
                self.daemon = CCMDaemon(
                    kubeconfig=kubeconfig, cloud_config=self.config, flags=flags
                ).start()
                await self.daemon.wait_ready()
                # Leading and subscribed: XO changes reach it from now on.
                await wait_event_stream(
                    control, at_least=before + SUBSCRIPTIONS_PER_STREAM, within=20
                )
        except Exception as err:
            self.failed = repr(err)
            raise
        return self.daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


# -- the XO side of one scenario --------------------------------------------------
@dataclass
class World:
    """A pool with hosts of its own in a fake XO, and VMs on them."""

    control: FakeXOControlClient
    pool: dict[str, Any]
    hosts: list[dict[str, Any]]
    vms: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def create(
        cls,
        control: FakeXOControlClient,
        *,
        hosts: int = 2,
        pool_name: str = "",
        host_names: Sequence[str] = (),
    ) -> World:
        pool = await control.add_pool(name_label=pool_name or unique("pool"))
        made = []
        for i in range(hosts):
            name = host_names[i] if i < len(host_names) else unique(f"host{i}")
            made.append(await control.add_host(pool_id=pool["id"], name_label=name))
        return cls(control=control, pool=pool, hosts=made)

    @property
    def pool_id(self) -> str:
        return str(self.pool["id"])

    def host_id(self, index: int) -> str:
        return str(self.hosts[index]["id"])

    async def vm(self, *, host: int = 0, name_label: str = "", **fields: Any) -> dict[str, Any]:
        """A VM of this pool, running on ``hosts[host]`` unless ``power_state`` says otherwise."""
        vm = await self.control.add_vm(
            name_label=name_label or unique("vm"),
            pool_id=self.pool_id,
            host_id=self.host_id(host) if fields.get("power_state") != "Halted" else None,
            **fields,
        )
        self.vms.append(vm)
        return vm

    async def set_addresses(self, vm_id: str, addresses: Mapping[str, str]) -> None:
        await self.control.call("POST", f"/vms/{vm_id}/addresses", {"addresses": dict(addresses)})


def provider_id(pool_id: str, vm_id: str) -> str:
    return f"xenorchestra://{pool_id}/{vm_id}"


def little_endian(uuid: str) -> str:
    """The uuid as an SMBIOS 2.8 (UEFI) guest reports it: the first three fields
    byte-reversed."""
    head = uuid.split("-")
    for i in range(3):
        head[i] = bytes.fromhex(head[i])[::-1].hex()
    return "-".join(head)


# -- Nodes ----------------------------------------------------------------------------
class Nodes:
    """Creates uniquely named Nodes for one test; :meth:`cleanup` deletes them all."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.names: list[str] = []

    async def create(self, prefix: str, **fields: Any) -> str:
        name = unique(prefix)
        self.names.append(name)
        await create_node(self.kube, name, **fields)
        return name

    async def registered(
        self, prefix: str, pool_id: str, vm_ids: Sequence[str], *, ready: int = 0
    ) -> list[str]:
        """One Node per VM as the CCM leaves it once registered (providerID and region,
        no uninitialized taint); the first ``ready`` are Ready, the rest NotReady."""
        return [
            await self.create(
                prefix,
                uninitialized=False,
                ready="True" if i < ready else "False",
                provider_id=provider_id(pool_id, vm_id),
                labels={L.REGION: pool_id},
            )
            for i, vm_id in enumerate(vm_ids)
        ]

    async def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(ApiError):
                await self.kube.request("DELETE", f"/api/v1/nodes/{name}")


async def node_or_none(kube: KubeClient, name: str) -> dict[str, Any] | None:
    try:
        return await get_node(kube, name)
    except ApiError as err:
        if err.not_found:
            return None
        raise


async def set_ready(kube: KubeClient, name: str, status: str) -> None:
    """What kubelet (or the node lifecycle controller) does to the Ready condition."""
    now = format_time(datetime.now(UTC))
    reason = "KubeletReady" if status == "True" else "KubeletNotReady"
    condition = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": f"e2e: Ready={status}",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    await kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        body={"status": {"conditions": [condition]}},
        content_type=MERGE_PATCH,
    )


def labels(node: Mapping[str, Any]) -> dict[str, str]:
    return dict(node["metadata"].get("labels") or {})


def taints(node: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Taints by key."""
    return {t["key"]: t for t in node["spec"].get("taints") or []}


def addresses(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(a["type"], a["address"]) for a in node["status"].get("addresses") or []]


def initialized(node: Mapping[str, Any]) -> bool:
    """The cloud-node controller is done: taint gone and addresses written."""
    return UNINITIALIZED not in taints(node) and bool(addresses(node))


async def wait_node(
    kube: KubeClient,
    name: str,
    check: Callable[[dict[str, Any]], object],
    *,
    within: float = 20.0,
    every: float = 0.02,
) -> dict[str, Any]:
    """The Node once ``check(node)`` is truthy."""
    seen: dict[str, Any] = {}

    async def ok() -> bool:
        node = await node_or_none(kube, name)
        if node is None:
            return False
        seen["node"] = node
        return bool(check(node))

    try:
        await until(ok, within=within, every=every)
    except TimeoutError:
        raise AssertionError(f"node {name}: condition not met within {within}s: {seen}") from None
    return seen["node"]


async def wait_initialized(kube: KubeClient, name: str, *, within: float = 20.0) -> dict[str, Any]:
    return await wait_node(kube, name, initialized, within=within)


async def wait_gone(
    kube: KubeClient, name: str, *, within: float = 20.0, every: float = 0.02
) -> None:
    async def gone() -> bool:
        return await node_or_none(kube, name) is None

    await until(gone, within=within, every=every)


async def node_events(
    kube: KubeClient, name: str, *, reason: str | None = None
) -> list[dict[str, Any]]:
    """core/v1 Events about Node ``name`` (client-go puts them in ``default``)."""
    selector = f"involvedObject.kind=Node,involvedObject.name={name}"
    if reason:
        selector += f",reason={reason}"
    answer = await kube.request(
        "GET", "/api/v1/namespaces/default/events", query=[("fieldSelector", selector)]
    )
    return list(answer.get("items") or [])


async def wait_event(
    kube: KubeClient,
    name: str,
    reason: str,
    *,
    within: float = 20.0,
    match: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The first ``reason`` event about node ``name`` (that ``match`` accepts)."""
    found: list[dict[str, Any]] = []

    async def recorded() -> bool:
        events = await node_events(kube, name, reason=reason)
        found[:] = [e for e in events if match is None or match(e)]
        return bool(found)

    try:
        await until(recorded, within=within, every=0.05)
    except TimeoutError:
        others = [e["reason"] for e in await node_events(kube, name)]
        raise AssertionError(
            f"no {reason} event about node {name} within {within}s (events: {others})"
        ) from None
    return found[0]


def leader_status(text: str) -> float:
    """``leader_election_master_status``: 1 while this replica leads."""
    return metric(text, "leader_election_master_status")


def lease_identity(log: str) -> str:
    """The identity a CCM uses in leader election (from its log)."""
    found = re.search(r"leader election: (\S+) trying to acquire lease", log)
    return found.group(1) if found else ""


async def get_lease(kube: KubeClient, name: str, namespace: str = "kube-system") -> dict[str, Any]:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{quote(name, safe='')}"
    return await kube.request("GET", path)


def audit_by(audit_log: Path, username: str) -> list[tuple[str, str, int]]:
    """``(verb, resource[/subresource], status)`` of every request by ``username`` in
    kube-apiserver's audit log (one JSON event per line)."""
    out = []
    for line in audit_log.read_text(encoding="utf-8").splitlines():
        if username not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:  # a line still being written
            continue
        if (event.get("user") or {}).get("username") != username:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        if ref.get("apiGroup"):
            resource = f"{ref['apiGroup']}/{resource}"
        code = int((event.get("responseStatus") or {}).get("code") or 0)
        out.append((str(event.get("verb", "")), resource, code))
    return out


# -- metrics and timings ------------------------------------------------------------------
def metric(text: str, series: str, /, **labels_: str) -> float:
    """The sum of the samples of ``series`` whose labels include ``labels_`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(series):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)", line)
        if match is None or match.group(1) != series:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels_.items()):
            total += float(match.group(4))
    return total


def lifecycle_results(text: str, result: str) -> float:
    return metric(
        text,
        "xenorchestra_ccm_node_syncs_total",
        controller="cloud-node-lifecycle",
        result=result,
    )


def summary(samples: Sequence[float]) -> str:
    return (
        f"n={len(samples)} p50={statistics.median(samples) * 1000:.0f}ms "
        f"max={max(samples) * 1000:.0f}ms "
        f"all=[{', '.join(f'{s * 1000:.0f}' for s in samples)}]ms"
    )


def report(
    record_property: Callable[[str, object], None], what: str, samples: Sequence[float]
) -> None:
    """Print a measurement (visible with ``-s`` or ``-rP``) and attach it to the report."""
    line = f"E2E-TIMING {what}: {summary(samples)}"
    print(line)
    record_property(what, summary(samples))


async def timed(
    action: Callable[[], Awaitable[object]],
    reaction: Callable[[], Awaitable[bool]],
    *,
    within: float,
) -> float:
    """Seconds from the start of ``action`` until ``reaction()`` is true (polled every 10 ms)."""
    start = time.monotonic()
    await action()
    await until(reaction, within=within, every=0.01)
    return time.monotonic() - start
