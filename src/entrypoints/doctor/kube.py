"""Kubernetes: the API server, who doctor is, the Lease, the node list; and their verdicts.

Requests: ``GET /version``, a SelfSubjectReview (who am I), the Lease, the
kubelet serving CSRs and one paged node list (the access reviews are :mod:`.rbac`'s).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from adapters.kubernetes import ApiError, KubeClient, KubeConfigError
from adapters.kubernetes.convert import node_from_object, parse_time
from domain.certificates import CertificateRequest
from domain.model import Node
from entrypoints.container import Container, provide
from entrypoints.doctor.csr import csr_read_problem, list_serving_requests
from entrypoints.doctor.findings import (
    KUBE_API,
    KUBE_LEASE,
    KUBE_NODES,
    Finding,
    fail,
    format_age,
    ok,
    plural,
    unknown,
    warn,
)
from entrypoints.doctor.options import DoctorOptions
from entrypoints.doctor.rbac import diagnose_access, required_permissions, review
from entrypoints.doctor.report import Report
from entrypoints.doctor.texts import RBAC_FIX


def kube_unavailable(subject: str, detail: str) -> Finding:
    return unknown(
        KUBE_API,
        subject,
        f"cannot use the API server: {detail}",
        "pass --kubeconfig for this cluster, or run doctor in the CCM's pod "
        "(kubectl exec) where the in-cluster config applies",
    )


def diagnose_kube_api(server: str, *, version: str, identity: str) -> Finding:
    return ok(KUBE_API, server, f"Kubernetes {version or '?'} answers, as {identity}")


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """The leader-election Lease as read (``spec``)."""

    holder: str
    renewed_at: datetime | None
    duration: float


def diagnose_lease(lease: LeaseInfo | None, *, namespace: str, name: str, now: datetime) -> Finding:
    """Is a CCM replica leading, and renewing in time?"""
    subject = f"{namespace}/{name}"
    pods = (
        f"check the CCM's pods (kubectl -n {namespace} get pods) and their logs; "
        "a replica that cannot reach the API server cannot renew"
    )
    if lease is None:
        return fail(
            KUBE_LEASE,
            subject,
            "no such Lease: no CCM replica has ever led under this name",
            "deploy the CCM, or give doctor the --leader-elect-resource-name/-namespace "
            "the CCM runs with (the reference's manifests use "
            "cloud-controller-manager-xenorchestra)",
        )
    age = None if lease.renewed_at is None else (now - lease.renewed_at).total_seconds()
    if not lease.holder:
        return fail(
            KUBE_LEASE,
            subject,
            "nobody holds the Lease (released"
            + (f" {format_age(age)} ago" if age is not None else "")
            + "): no CCM replica is running",
            pods,
        )
    if age is None:
        return fail(KUBE_LEASE, subject, f"held by {lease.holder} but never renewed", pods)
    if age > lease.duration:
        return fail(
            KUBE_LEASE,
            subject,
            f"held by {lease.holder}, last renewed {format_age(age)} ago (lease "
            f"{lease.duration:g}s): the leader is gone and no replica took over",
            pods,
        )
    return ok(
        KUBE_LEASE,
        subject,
        f"held by {lease.holder}, renewed {format_age(age)} ago (lease {lease.duration:g}s)",
    )


def lease_unreadable(*, namespace: str, name: str, detail: str, forbidden: bool) -> Finding:
    """The Lease could not be read: leader election stays unchecked."""
    fix = (
        f"run doctor as an identity that may get leases in {namespace} (e.g. an admin's "
        "kubeconfig) to check leader election"
        if forbidden
        else "run doctor again"
    )
    return warn(KUBE_LEASE, f"{namespace}/{name}", f"cannot read the Lease: {detail}", fix)


def diagnose_node_list(count: int) -> Finding:
    return ok(KUBE_NODES, "nodes", f"{plural(count, 'node')} listed")


NODE_PAGE = 500


@dataclass
class KubeReading:
    findings: list[Finding] = field(default_factory=list)
    nodes: list[Node] | None = None
    #: the kubelet serving CSRs, or None (``csr_problem`` says why)
    csrs: list[CertificateRequest] | None = None
    csr_problem: str = ""


async def read_kube(container: Container, opts: DoctorOptions, report: Report) -> KubeReading:
    """The API server, identity, access, Lease and nodes, through the container's client."""
    out = KubeReading()
    where = opts.kubeconfig or "in-cluster config"
    try:
        kube = await provide(container.kube_client)
    except KubeConfigError as err:
        out.findings.append(kube_unavailable(where, str(err)))
        return out
    server = kube.server or where
    report.kube_requests = kube.requests

    try:
        version = await kube.request("GET", "/version")
    except ApiError as err:
        out.findings.append(kube_unavailable(server, str(err)))
        return out
    identity = await whoami(kube)
    out.findings.append(
        diagnose_kube_api(server, version=str(version.get("gitVersion", "")), identity=identity)
    )

    permissions = required_permissions(
        lease_namespace=opts.lease_namespace,
        startup_event_namespace=os.environ.get("POD_NAMESPACE") or "kube-system",
        lease_name=opts.lease_name,
        csr_approval=opts.csr_approval,
    )
    answers = await asyncio.gather(*(review(kube, p) for p in permissions))
    out.findings.extend(diagnose_access(identity, dict(zip(permissions, answers, strict=True))))

    if opts.leader_elect:
        out.findings.append(await lease_finding(kube, opts))
    else:
        out.findings.append(
            ok(
                KUBE_LEASE,
                f"{opts.lease_namespace}/{opts.lease_name}",
                "not checked: --leader-elect=false",
            )
        )

    try:
        out.csrs = await list_serving_requests(kube)
    except ApiError as err:
        out.csr_problem = csr_read_problem(err)

    try:
        out.nodes = await list_nodes(kube)
    except ApiError as err:
        if err.status in (401, 403):
            out.findings.append(
                fail(
                    KUBE_NODES,
                    "nodes",
                    f"cannot list nodes: {err}",
                    RBAC_FIX.format(identity=identity),
                )
            )
        else:
            out.findings.append(
                unknown(KUBE_NODES, "nodes", f"cannot list nodes: {err}", "run doctor again")
            )
        return out
    out.findings.append(diagnose_node_list(len(out.nodes)))
    return out


async def whoami(kube: KubeClient) -> str:
    """The username the API server sees (SelfSubjectReview, Kubernetes 1.28+)."""
    try:
        answer = await kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    except ApiError:
        return "the identity in use"
    user = (answer.get("status") or {}).get("userInfo") or {}
    return str(user.get("username") or "the identity in use")


async def lease_finding(kube: KubeClient, opts: DoctorOptions) -> Finding:
    ns, name = opts.lease_namespace, opts.lease_name
    path = (
        f"/apis/coordination.k8s.io/v1/namespaces/{quote(ns, safe='')}"
        f"/leases/{quote(name, safe='')}"
    )
    lease: LeaseInfo | None = None
    try:
        obj = await kube.request("GET", path)
    except ApiError as err:
        if not err.not_found:
            return lease_unreadable(
                namespace=ns, name=name, detail=str(err), forbidden=err.status in (401, 403)
            )
    else:
        spec = obj.get("spec") or {}
        lease = LeaseInfo(
            holder=str(spec.get("holderIdentity") or ""),
            renewed_at=parse_time(spec.get("renewTime")),
            duration=float(spec.get("leaseDurationSeconds") or 15),
        )
    return diagnose_lease(lease, namespace=ns, name=name, now=datetime.now(UTC))


async def list_nodes(kube: KubeClient) -> list[Node]:
    """One node list, read in pages of NODE_PAGE."""
    nodes: list[Node] = []
    token = ""
    while True:
        query = [("limit", str(NODE_PAGE))] + ([("continue", token)] if token else [])
        page = await kube.request("GET", "/api/v1/nodes", query=query)
        nodes.extend(node_from_object(item) for item in page.get("items") or ())
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return nodes
