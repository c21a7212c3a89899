"""``doctor``: the troubleshooting guide as one read-only command.

``xenorchestra-cloud-controller-manager doctor --cloud-config FILE
[--kubeconfig FILE] [--output table|json]`` reads, and never writes:

- the cloud config (as the CCM loads it);
- Xen Orchestra: ``GET /ping``, one ``GET /vms?limit=1`` (credentials),
  one snapshot (``GET /vms``, ``/hosts``, ``/pools`` with field lists), the
  events endpoint opened and closed at once, and, only when XO lists no
  pool, one ``GET /pools/{id}`` to tell a non-admin token from a lost pool;
- Kubernetes: ``GET /version``, a SelfSubjectReview (who am I), one
  SelfSubjectAccessReview per verb the CCM needs (reviews are not stored),
  the Lease, and one paged node list.

That is a constant number of requests whatever the cluster's size. Every
verdict is decided in :mod:`domain.diagnosis`; this module only gathers,
then prints a table or JSON. Exit codes: 0 all ok (warnings allowed), 1
something to fix, 2 something could not be checked (see
:func:`domain.diagnosis.exit_code`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from adapters.config import CloudConfig, ConfigError, load_config
from adapters.kubernetes import ApiError, ClientSettings, KubeClient, KubeConfigError
from adapters.kubernetes.configuration import load_configuration
from adapters.kubernetes.convert import node_from_object, parse_time
from adapters.logging_setup import configure_logging, mask_secrets, register_secret
from adapters.xenorchestra import Credentials, RetryPolicy, XOHttpClient, XOInventory
from adapters.xenorchestra.http import ADMIN_HINT, TLSError, XONotFound
from adapters.xenorchestra.tls import tls_verify
from domain import diagnosis as dx
from domain.diagnosis import Finding, LeaseInfo, Permission, ProbeAnswer, Status, XOProblem
from domain.errors import AuthenticationError, InventoryError, ProtocolError, UnavailableError
from domain.model import InventorySnapshot, Node
from entrypoints.flags import parse_bool, parse_duration

PROG = "xenorchestra-cloud-controller-manager doctor"
NODE_PAGE = 500
EVENTS_ENDPOINT = "GET /events"


# -- options ----------------------------------------------------------------------
@dataclass(frozen=True)
class DoctorOptions:
    cloud_config: str | None = None
    kubeconfig: str | None = None
    output: str = "table"
    leader_elect: bool = True
    lease_name: str = "cloud-controller-manager"
    lease_namespace: str = "kube-system"
    uninitialized_grace: float = dx.DEFAULT_UNINITIALIZED_GRACE
    timeout: float = 10.0
    all_nodes: bool = False
    v: int = 0


def doctor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check the CCM's setup, read-only: cloud config, Xen Orchestra, "
        "Kubernetes access, leader election and every node. Exit 0: all ok (warnings "
        "allowed); 1: something to fix; 2: something could not be checked.",
    )
    d = DoctorOptions()
    a = parser.add_argument
    a(
        "--cloud-config",
        metavar="FILE",
        default=None,
        help="the CCM's cloud config (else the XOA_* variables)",
    )
    a(
        "--kubeconfig",
        metavar="FILE",
        default=None,
        help="kubeconfig path (default: in-cluster config)",
    )
    a("--output", "-o", choices=("table", "json"), default=d.output, help="default table")
    a(
        "--leader-elect",
        metavar="BOOL",
        type=parse_bool,
        nargs="?",
        const=True,
        default=d.leader_elect,
        help="as the CCM runs (default true); false skips the Lease check",
    )
    a(
        "--leader-elect-resource-name",
        metavar="NAME",
        default=d.lease_name,
        help="the CCM's Lease name (default %(default)s)",
    )
    a(
        "--leader-elect-resource-namespace",
        metavar="NAMESPACE",
        default=d.lease_namespace,
        help="the CCM's Lease namespace (default %(default)s)",
    )
    a(
        "--uninitialized-grace",
        metavar="DURATION",
        type=parse_duration,
        default=d.uninitialized_grace,
        help="a node still uninitialized after this long is stuck (default 2m)",
    )
    a(
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        default=d.timeout,
        help="how long to wait for XO and the API server, retries included (default 10s)",
    )
    a(
        "--all-nodes",
        action="store_true",
        help="list every node's ok lines too (default: one count per check)",
    )
    a(
        "--v",
        "-v",
        metavar="N",
        type=int,
        default=d.v,
        help="log verbosity to stderr (default 0: none)",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> DoctorOptions:
    return DoctorOptions(
        cloud_config=args.cloud_config,
        kubeconfig=args.kubeconfig,
        output=args.output,
        leader_elect=args.leader_elect,
        lease_name=args.leader_elect_resource_name,
        lease_namespace=args.leader_elect_resource_namespace,
        uninitialized_grace=args.uninitialized_grace,
        timeout=max(0.1, args.timeout),
        all_nodes=args.all_nodes,
        v=args.v,
    )


# -- the report -----------------------------------------------------------------
@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    xo_requests: Counter[str] = field(default_factory=Counter)
    kube_requests: Counter[str] = field(default_factory=Counter)

    def shown(self, *, all_nodes: bool) -> list[Finding]:
        return list(self.findings) if all_nodes else dx.condense(self.findings)


#: Column widths stop growing there: a longer cell pushes only its own row's message.
_CAPS = (1, 20, 40)


def render_table(findings: Sequence[Finding], summary: dx.Summary) -> str:
    """Aligned columns; each fix on the line below its finding."""
    headers = ("", "CHECK", "SUBJECT", "MESSAGE")
    rows = [(f.status.symbol, f.check, f.subject, f.message) for f in findings]
    widths = [min(cap, max(len(r[i]) for r in [headers, *rows])) for i, cap in enumerate(_CAPS)]
    indent = sum(widths) + 2 * 3

    def line(cells: Sequence[str]) -> str:
        return "".join(c.ljust(w) + "  " for c, w in zip(cells[:3], widths, strict=True)) + cells[3]

    out = [line(headers).rstrip()]
    for finding, row in zip(findings, rows, strict=True):
        out.append(line(row).rstrip())
        if finding.fix and finding.status is not Status.OK:
            out.append(" " * indent + f"fix: {finding.fix}")
    out.append("")
    out.append(summary.text)
    return "\n".join(out) + "\n"


def render_json(report: Report, findings: Sequence[Finding], summary: dx.Summary) -> str:
    document = {
        "findings": [
            {
                "status": f.status.value,
                "symbol": f.status.symbol,
                "check": f.check,
                "subject": f.subject,
                "message": f.message,
                "fix": f.fix,
            }
            for f in findings
        ],
        "summary": {
            **{status.value: n for status, n in summary.counts.items()},
            "text": summary.text,
        },
        "exit_code": summary.exit_code,
        "requests": {
            "xo": dict(sorted(report.xo_requests.items())),
            "kubernetes": dict(sorted(report.kube_requests.items())),
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# -- config ------------------------------------------------------------------------
def _load_config(path: str | None) -> tuple[CloudConfig | None, Finding]:
    origin = f"cloud config {path}" if path else "environment (XOA_*)"
    if path:
        try:
            Path(path).read_bytes()
        except OSError as err:
            return None, dx.config_unreadable(origin, f"cannot read: {err.strerror or err}")
    try:
        config = load_config(path)
    except ConfigError as err:
        if not path and "no XOA_URL" in str(err):
            return None, dx.config_unreadable(origin, str(err))
        return None, dx.config_invalid(origin, str(err))
    for secret in (config.token, config.password):
        register_secret(secret.get_secret_value() if secret else None)
    return config, dx.ok(dx.CONFIG, origin, "parses")


def _auth_method(config: CloudConfig) -> str:
    return "token" if config.token else "username/password"


# -- Xen Orchestra --------------------------------------------------------------------
class _CountingObserver:
    """Counts XO requests per endpoint template (each retry attempt counts)."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    def observe_xo_request(self, *, endpoint: str, seconds: float, error: str | None) -> None:
        self.counts[endpoint] += 1


def _problem(err: InventoryError) -> XOProblem:
    if isinstance(err, TLSError):
        return XOProblem.TLS
    if isinstance(err, XONotFound):
        return XOProblem.NOT_XO
    if isinstance(err, AuthenticationError):
        return XOProblem.FORBIDDEN if err.status == 403 else XOProblem.REFUSED
    if isinstance(err, ProtocolError):
        return XOProblem.PROTOCOL
    if isinstance(err, UnavailableError):
        return XOProblem.UNREACHABLE
    return XOProblem.PROTOCOL


def _detail(err: BaseException) -> str:
    """The adapter's message without its own advice (the finding's fix gives better)."""
    text = str(err).removesuffix(f": {ADMIN_HINT}")
    return text.split("; set caFile", 1)[0]


@dataclass
class _XO:
    """What XO told us (``snapshot`` None when it could not be read)."""

    findings: list[Finding] = field(default_factory=list)
    client: XOHttpClient | None = None
    snapshot: InventorySnapshot | None = None
    events: bool | None = None
    events_detail: str = ""


async def _read_xo(
    config: CloudConfig, opts: DoctorOptions, report: Report, stack: contextlib.AsyncExitStack
) -> _XO:
    out = _XO()
    url = config.url
    ca_file = str(config.ca_file) if config.ca_file else ""

    def failed(problem: XOProblem, err: BaseException) -> _XO:
        out.findings.append(
            dx.diagnose_xo_failure(
                problem, url=url, detail=_detail(err), insecure=config.insecure, ca_file=ca_file
            )
        )
        return out

    try:
        verify = tls_verify(insecure=config.insecure, ca_file=config.ca_file)
    except InventoryError as err:
        return failed(XOProblem.CA_FILE, err)
    client = XOHttpClient(
        url=url,
        credentials=Credentials(
            token=config.token, username=config.username, password=config.password
        ),
        verify=verify,
        timeout=min(config.client_timeout, opts.timeout),
        retry=RetryPolicy(deadline=opts.timeout, initial_backoff=0.1, max_backoff=1.0),
        max_concurrent_requests=4,
        observer=_CountingObserver(report.xo_requests),
    )
    inventory = XOInventory(client)
    stack.push_async_callback(inventory.aclose)

    try:
        pong = await client.get_json("/ping", endpoint="GET /ping")
    except XONotFound:
        return failed(XOProblem.NOT_XO, InventoryError("GET /rest/v0/ping answers 404"))
    except ProtocolError as err:
        return failed(XOProblem.NOT_XO, err)
    except InventoryError as err:
        return failed(_problem(err), err)
    if not (isinstance(pong, dict) and pong.get("result") == "pong"):
        return failed(XOProblem.NOT_XO, InventoryError("GET /rest/v0/ping does not answer pong"))
    out.findings.append(dx.diagnose_xo_reachable(url))

    try:
        await inventory.check()
    except InventoryError as err:
        return failed(_problem(err), err)
    out.findings.append(dx.diagnose_xo_token(url, _auth_method(config)))

    try:
        out.snapshot = await inventory.snapshot()
    except InventoryError as err:
        return failed(_problem(err), err)
    out.client = client
    out.events, out.events_detail = await _probe_events(client, opts.timeout)
    return out


async def _probe_events(client: XOHttpClient, wait: float) -> tuple[bool | None, str]:
    """Open the event stream and close it at once: 404 means no events endpoint."""
    try:
        async with (
            asyncio.timeout(wait),
            client.stream("/events", endpoint=EVENTS_ENDPOINT) as response,
        ):
            kind = response.headers.get("content-type", "")
            if "text/event-stream" in kind:
                return True, ""
            return None, f"GET /rest/v0/events answered {kind or 'no content type'}"
    except XONotFound:
        return False, ""
    except TimeoutError:
        return None, f"no answer within {wait:g}s"
    except InventoryError as err:
        return None, str(err)


async def _probe_pool(client: XOHttpClient, pool_id: str) -> ProbeAnswer | None:
    try:
        await client.get_json(f"/pools/{quote(pool_id, safe='')}", endpoint="GET /pools/{id}")
    except XONotFound:
        return ProbeAnswer.NOT_FOUND
    except AuthenticationError as err:
        return ProbeAnswer.FORBIDDEN if _problem(err) is XOProblem.FORBIDDEN else None
    except InventoryError:
        return None
    return ProbeAnswer.FOUND


# -- Kubernetes ----------------------------------------------------------------------
@dataclass
class _Kube:
    findings: list[Finding] = field(default_factory=list)
    nodes: list[Node] | None = None


async def _read_kube(
    opts: DoctorOptions, report: Report, stack: contextlib.AsyncExitStack
) -> _Kube:
    out = _Kube()
    where = opts.kubeconfig or "in-cluster config"
    try:
        configuration = await load_configuration(opts.kubeconfig)
    except KubeConfigError as err:
        out.findings.append(dx.kube_unavailable(where, str(err)))
        return out
    server = str(configuration.host or where)
    settings = ClientSettings(
        qps=100.0,
        burst=100,
        workers=4,
        connect_timeout=opts.timeout,
        read_timeout=opts.timeout,
        max_retries=1,
        user_agent="xenorchestra-cloud-controller-manager/doctor",
    )
    kube = KubeClient(configuration, settings, name="doctor")
    stack.push_async_callback(kube.aclose)
    report.kube_requests = kube.requests

    try:
        version = await kube.request("GET", "/version")
    except ApiError as err:
        out.findings.append(dx.kube_unavailable(server, str(err)))
        return out
    identity = await _whoami(kube)
    out.findings.append(
        dx.diagnose_kube_api(server, version=str(version.get("gitVersion", "")), identity=identity)
    )

    permissions = dx.required_permissions(
        lease_namespace=opts.lease_namespace,
        startup_event_namespace=os.environ.get("POD_NAMESPACE") or "kube-system",
    )
    answers = await asyncio.gather(*(_review(kube, p) for p in permissions))
    out.findings.extend(dx.diagnose_access(identity, dict(zip(permissions, answers, strict=True))))

    if opts.leader_elect:
        out.findings.append(await _lease_finding(kube, opts))
    else:
        out.findings.append(
            dx.ok(
                dx.KUBE_LEASE,
                f"{opts.lease_namespace}/{opts.lease_name}",
                "not checked: --leader-elect=false",
            )
        )

    try:
        out.nodes = await _list_nodes(kube)
    except ApiError as err:
        if err.status in (401, 403):
            out.findings.append(
                dx.fail(
                    dx.KUBE_NODES,
                    "nodes",
                    f"cannot list nodes: {err}",
                    dx.RBAC_FIX.format(identity=identity),
                )
            )
        else:
            out.findings.append(
                dx.unknown(dx.KUBE_NODES, "nodes", f"cannot list nodes: {err}", "run doctor again")
            )
        return out
    out.findings.append(dx.diagnose_node_list(len(out.nodes)))
    return out


async def _whoami(kube: KubeClient) -> str:
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


async def _review(kube: KubeClient, perm: Permission) -> bool | None:
    attributes = {
        "verb": perm.verb,
        "group": perm.group,
        "resource": perm.resource,
        "subresource": perm.subresource,
        "namespace": perm.namespace,
    }
    try:
        answer = await kube.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
            },
        )
    except ApiError:
        return None
    return bool((answer.get("status") or {}).get("allowed"))


async def _lease_finding(kube: KubeClient, opts: DoctorOptions) -> Finding:
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
            return dx.lease_unreadable(
                namespace=ns, name=name, detail=str(err), forbidden=err.status in (401, 403)
            )
    else:
        spec = obj.get("spec") or {}
        lease = LeaseInfo(
            holder=str(spec.get("holderIdentity") or ""),
            renewed_at=parse_time(spec.get("renewTime")),
            duration=float(spec.get("leaseDurationSeconds") or 15),
        )
    return dx.diagnose_lease(lease, namespace=ns, name=name, now=datetime.now(UTC))


async def _list_nodes(kube: KubeClient) -> list[Node]:
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


# -- the whole run ---------------------------------------------------------------------
def _unexpected(check: str, subject: str, err: Exception) -> Finding:
    return dx.unknown(
        check,
        dx.redact_url(subject),
        f"unexpected error: {type(err).__name__}: {err}",
        "run doctor again with --v 6 and report the log",
    )


async def run_doctor(opts: DoctorOptions) -> Report:
    """Every check, in report order: config, XO, Kubernetes, nodes."""
    report = Report()
    config, config_finding = _load_config(opts.cloud_config)
    async with contextlib.AsyncExitStack() as stack:
        xo = _XO()
        if config is not None:
            try:
                xo = await _read_xo(config, opts, report, stack)
            except Exception as err:  # a bug or a surprise must not hide the other checks
                xo = _XO(findings=[_unexpected(dx.XO_REACHABLE, config.url, err)])
            xo.findings[:0] = dx.diagnose_config(
                origin=config_finding.subject,
                url=config.url,
                insecure=config.insecure,
                ca_file=str(config.ca_file or ""),
                auth_method=_auth_method(config),
            )
        else:
            report.findings.append(config_finding)
        try:
            kube = await _read_kube(opts, report, stack)
        except Exception as err:
            kube = _Kube(findings=[_unexpected(dx.KUBE_API, opts.kubeconfig or "in-cluster", err)])

        report.findings.extend(xo.findings)
        if config is not None and xo.snapshot is not None and xo.client is not None:
            snap = xo.snapshot
            probe_pool, probe = "", None
            if not snap.pools and kube.nodes:
                hints = dx.pool_hints(kube.nodes)
                if hints:
                    probe_pool = hints[0]
                    probe = await _probe_pool(xo.client, probe_pool)
            report.findings.append(
                dx.diagnose_xo_access(
                    url=config.url,
                    vms=len(snap.vms),
                    hosts=len(snap.hosts),
                    pools=len(snap.pools),
                    probe_pool=probe_pool,
                    probe=probe,
                )
            )
            report.findings.append(
                dx.diagnose_events(config.url, available=xo.events, detail=xo.events_detail)
            )
        report.findings.extend(kube.findings)
        if kube.nodes is not None:
            # A snapshot through non-admin eyes would make every node look lost.
            complete = xo.snapshot is not None and not any(
                f.check == dx.XO_ADMIN and f.status is not Status.OK for f in report.findings
            )
            report.findings.extend(
                dx.diagnose_nodes(
                    kube.nodes,
                    xo.snapshot if complete else None,
                    now=datetime.now(UTC),
                    options=config.options() if config is not None else dx.DEFAULT_OPTIONS,
                    uninitialized_grace=opts.uninitialized_grace,
                )
            )
        report.kube_requests = Counter(report.kube_requests)
    return report


def _null_sink(_message: object) -> None:
    """Logs are off unless --v: the report is the output."""


def main_doctor(argv: Sequence[str], *, stdout: TextIO | None = None) -> int:
    """The ``doctor`` sub-command; returns the exit code (0 ok, 1 fix, 2 cannot check)."""
    parser = doctor_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return dx.EXIT_OK if exit_.code in (0, None) else dx.EXIT_CANNOT_CHECK
    opts = options_from_args(args)
    if opts.v > 0:
        configure_logging(verbosity=opts.v)
    else:
        configure_logging(verbosity=0, sink=_null_sink)
    report = asyncio.run(run_doctor(opts))
    findings = report.shown(all_nodes=opts.all_nodes)
    summary = dx.summarize(findings)
    text = (
        render_json(report, findings, summary)
        if opts.output == "json"
        else render_table(findings, summary)
    )
    out = stdout or sys.stdout
    out.write(mask_secrets(text))
    out.flush()
    return summary.exit_code
