"""What ``doctor`` concludes from what it read: every verdict, message and fix.

The ``doctor`` command (``entrypoints.doctor``) reads the cloud config, one
XO snapshot, one node list, a few access reviews and the Lease, then hands
plain values to the functions here. They decide; they never do I/O, so each
rule is table-tested without a server.

A :class:`Finding` is one line of the report: a status, the check, what it
is about (a URL, a node), what is wrong (or right) and how to fix it.
Statuses and the exit code:

- ``ok`` (✔): nothing to do;
- ``warn`` (!): worth knowing, nothing is broken yet (the CCM will fix it
  itself, or the setup works but is weaker than it should be);
- ``fail`` (✗): something the operator must fix;
- ``unknown`` (?): the check could not be made (a file unreadable, XO or the
  API server not answering), so the report is incomplete.

Exit code: 2 if anything is unknown (whatever else was found: the report is
incomplete, fix what blocks it and run again), else 1 if anything failed,
else 0: warnings alone exit 0, they are listed but need no action.
Node checks follow the controllers' own rules (``domain.policies``), so
"what the CCM would do" is computed by the very code the CCM runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from domain import labels
from domain.errors import ProviderIDError, VMDeletedError
from domain.matching import (
    MatchedBy,
    SnapshotMatch,
    VMIndex,
    locate_in_snapshot,
    placement_pools,
    system_uuid_candidates,
)
from domain.model import VM, Host, InventorySnapshot, Node, NodeChange, Pool
from domain.options import CCMOptions
from domain.policies.initialization import plan_initialization
from domain.policies.label_sync import plan_label_sync
from domain.policies.lifecycle import LifecycleAction, VMState, decide
from domain.policies.metadata import instance_metadata
from domain.providerid import PREFIX, ProviderID, is_ours

DEFAULT_OPTIONS = CCMOptions()

#: How long a node may carry the uninitialized taint before doctor calls it stuck.
DEFAULT_UNINITIALIZED_GRACE = 120.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {Status.OK: "✔", Status.WARN: "!", Status.FAIL: "✗", Status.UNKNOWN: "?"}

# -- check names (the report's second column) ---------------------------------
CONFIG = "config"
XO_URL = "xo.url"
XO_TLS = "xo.tls"
XO_REACHABLE = "xo.reachable"
XO_TOKEN = "xo.token"
XO_ADMIN = "xo.admin"
XO_EVENTS = "xo.events"
KUBE_API = "kube.api"
KUBE_ACCESS = "kube.access"
KUBE_LEASE = "kube.lease"
KUBE_NODES = "kube.nodes"
NODE_PROVIDER_ID = "node.providerID"
NODE_VM = "node.vm"
NODE_INIT = "node.init"
NODE_LABELS = "node.labels"
NODE_TAGS = "node.tags"
NODE_LIFECYCLE = "node.lifecycle"

RBAC_FIX = (
    "apply deploy/kubernetes/rbac.yaml and bind the ClusterRole "
    "system:xenorchestra-cloud-controller-manager to {identity}"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report.

    ``routine`` marks an ok that says nothing beyond "fine": the report may
    fold such node lines into one count per check (see :func:`condense`).
    """

    status: Status
    check: str
    subject: str
    message: str
    fix: str = ""
    routine: bool = field(default=False, compare=False)


def ok(check: str, subject: str, message: str, *, routine: bool = False) -> Finding:
    return Finding(Status.OK, check, subject, message, routine=routine)


def warn(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(Status.WARN, check, subject, message, fix)


def fail(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(Status.FAIL, check, subject, message, fix)


def unknown(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(Status.UNKNOWN, check, subject, message, fix)


# -- the verdict ------------------------------------------------------------
EXIT_OK = 0
EXIT_FIX = 1
EXIT_CANNOT_CHECK = 2


def exit_code(findings: Iterable[Finding]) -> int:
    """2 if any check could not be made, else 1 if anything failed, else 0."""
    statuses = {f.status for f in findings}
    if Status.UNKNOWN in statuses:
        return EXIT_CANNOT_CHECK
    if Status.FAIL in statuses:
        return EXIT_FIX
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class Summary:
    counts: Mapping[Status, int]
    exit_code: int
    text: str


_VERDICTS = {
    EXIT_OK: "all good",
    EXIT_FIX: "something to fix",
    EXIT_CANNOT_CHECK: "could not check everything",
}


def summarize(findings: Sequence[Finding]) -> Summary:
    """Counts per status, the exit code and the report's last line."""
    counts = Counter(f.status for f in findings)
    code = exit_code(findings)
    parts = [
        f"{counts[Status.OK]} ✔ ok",
        f"{counts[Status.WARN]} ! warning{'s' if counts[Status.WARN] != 1 else ''}",
        f"{counts[Status.FAIL]} ✗ to fix",
        f"{counts[Status.UNKNOWN]} ? not checked",
    ]
    text = f"{', '.join(parts)}: {_VERDICTS[code]} (exit {code})"
    return Summary({s: counts[s] for s in Status}, code, text)


def condense(findings: Sequence[Finding]) -> list[Finding]:
    """Fold the routine node oks into one line per check, keep everything else.

    A 5,000-node cluster then reports its problems, not 25,000 ok lines.
    Order: the non-node lines as given, one folded line per node check, then
    the remaining node lines (problems and notable oks) as given.
    """
    totals: Counter[str] = Counter()
    routine: Counter[str] = Counter()
    for f in findings:
        if f.check.startswith("node."):
            totals[f.check] += 1
            routine[f.check] += f.routine
    general = [f for f in findings if not f.check.startswith("node.")]
    folded = [
        ok(
            check,
            _plural(routine[check], "node"),
            f"all {total} nodes ok"
            if routine[check] == total
            else f"{routine[check]} of {total} nodes ok",
        )
        for check, total in totals.items()
        if routine[check]
    ]
    details = [f for f in findings if f.check.startswith("node.") and not f.routine]
    return [*general, *folded, *details]


# -- small formatting helpers --------------------------------------------------
def format_age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h10m``, ``2d4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 and s % 60 else f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def redact_url(url: str) -> str:
    """The URL without any ``user:password@`` part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{path}"


# -- config -------------------------------------------------------------------
def config_unreadable(origin: str, message: str) -> Finding:
    return unknown(
        CONFIG,
        origin,
        message,
        "pass --cloud-config with the path of the CCM's cloud config (the file mounted "
        "in its pod), or set XOA_URL and XOA_TOKEN",
    )


def config_invalid(origin: str, message: str) -> Finding:
    """A config that reads but that the CCM would refuse at startup."""
    message = message.removeprefix(f"{origin}: ")
    lowered = message.lower()
    if "unknown key" in lowered:
        fix = "remove or correct the key: keys are case-sensitive (see docs/configuration.md)"
    elif "not both" in lowered:
        fix = "keep one method: token (an admin's API token, recommended) or username + password"
    elif "yaml" in lowered or "mapping" in lowered:
        fix = "the file must be a YAML mapping, e.g. `url: https://xo.example.org` + `token: ...`"
    elif "url" in lowered:
        fix = "url is XO's base address with its scheme, e.g. https://xo.example.org (no /rest/v0)"
    elif "token" in lowered or "username" in lowered or "password" in lowered:
        fix = "set token (an XO admin's API token), or username and password"
    else:
        fix = "correct the key named in the message (see docs/configuration.md)"
    return fail(CONFIG, origin, message, fix)


def diagnose_config(
    *, origin: str, url: str, insecure: bool, ca_file: str, auth_method: str
) -> list[Finding]:
    """The config parsed: say so, then judge how XO is reached."""
    shown = redact_url(url)
    found = [ok(CONFIG, origin, f"parses ({auth_method} authentication)")]
    if url.lower().startswith("http://"):
        found.append(
            warn(
                XO_URL,
                shown,
                "plain http: the XO credentials cross the network unencrypted",
                "use https:// (with caFile if XO's certificate comes from a private CA)",
            )
        )
    elif insecure:
        found.append(
            warn(
                XO_URL,
                shown,
                "insecure: true: XO's certificate is not verified, anyone on the path "
                "can impersonate XO and read the token",
                "set caFile to the CA that signed XO's certificate and remove insecure",
            )
        )
    else:
        trust = f"caFile {ca_file}" if ca_file else "the system CAs"
        found.append(ok(XO_URL, shown, f"https, certificate verified against {trust}"))
    return found


# -- Xen Orchestra -------------------------------------------------------------
class XOProblem(StrEnum):
    """Why a request to XO failed, as far as the fix is concerned."""

    CA_FILE = "ca-file"  # caFile cannot be loaded
    TLS = "tls"  # handshake or verification failed
    UNREACHABLE = "unreachable"  # no answer: connection, DNS, timeout, 5xx until the deadline
    NOT_XO = "not-xo"  # something answers, but not XO's REST API
    REFUSED = "refused"  # 401: credentials refused
    FORBIDDEN = "forbidden"  # 403: not an admin
    PROTOCOL = "protocol"  # XO answered what its API does not document


def diagnose_xo_failure(
    problem: XOProblem, *, url: str, detail: str, insecure: bool = False, ca_file: str = ""
) -> Finding:
    """The finding for a failed XO request; what follows it cannot be checked."""
    shown = redact_url(url)
    if problem is XOProblem.CA_FILE:
        return fail(
            XO_TLS,
            shown,
            detail,
            "caFile must name a readable PEM file holding the CA that signed XO's certificate",
        )
    if problem is XOProblem.TLS:
        fix = (
            f"caFile {ca_file} is not the CA that signed XO's certificate: point caFile at the "
            "right CA (or, insecurely, set insecure: true)"
            if ca_file
            else "set caFile to the CA that signed XO's certificate (or, insecurely, "
            "insecure: true)"
        )
        return fail(XO_TLS, shown, f"TLS verification failed: {detail}", fix)
    if problem is XOProblem.UNREACHABLE:
        return unknown(
            XO_REACHABLE,
            shown,
            f"XO does not answer: {detail}",
            "check url (host and port) and that this machine (the CCM's pod network) "
            "can reach XO: DNS, routes, firewalls, proxies",
        )
    if problem is XOProblem.NOT_XO:
        return fail(
            XO_REACHABLE,
            shown,
            f"this is not XO's REST API: {detail}",
            "url must be XO's base address (the one of its web UI), without /rest/v0; "
            "XO 5.100 or newer is needed for the REST API",
        )
    if problem is XOProblem.REFUSED:
        return fail(
            XO_TOKEN,
            shown,
            f"XO refused the credentials: {detail}",
            "create a new token for an XO admin (XO > User > Authentication tokens, or "
            "`xo-cli create-token`) and put it in token",
        )
    if problem is XOProblem.FORBIDDEN:
        return fail(
            XO_ADMIN,
            shown,
            f"the credentials are not an admin's: {detail}",
            "use a token of an XO admin: the CCM lists every VM, host and pool",
        )
    return fail(
        XO_REACHABLE,
        shown,
        f"XO answered something its API does not document: {detail}",
        "check that url reaches XO directly (not an HTML login page or proxy error)",
    )


def diagnose_xo_reachable(url: str) -> Finding:
    return ok(XO_REACHABLE, redact_url(url), "XO's REST API answers (GET /rest/v0/ping)")


def diagnose_xo_token(url: str, auth_method: str) -> Finding:
    return ok(XO_TOKEN, redact_url(url), f"XO accepts the {auth_method} credentials")


class ProbeAnswer(StrEnum):
    """XO's answer to ``GET /pools/{id}`` for a pool the nodes name."""

    FOUND = "found"
    NOT_FOUND = "not-found"
    FORBIDDEN = "forbidden"


def diagnose_xo_access(
    *,
    url: str,
    vms: int,
    hosts: int,
    pools: int,
    probe_pool: str = "",
    probe: ProbeAnswer | None = None,
) -> Finding:
    """Whether the credentials see everything (an admin's) or only what ACLs allow.

    XO answers a non-admin's lists with what its ACLs allow, often ``[]``:
    an empty pool list is the symptom; a 403 on a pool the nodes name proves it.
    """
    shown = redact_url(url)
    seen = f"{_plural(vms, 'VM')}, {_plural(hosts, 'host')}, {_plural(pools, 'pool')}"
    if pools:
        return ok(XO_ADMIN, shown, f"lists {seen}")
    fix = "use a token of an XO admin: the CCM must list every VM, host and pool"
    if probe is ProbeAnswer.FORBIDDEN:
        return fail(
            XO_ADMIN,
            shown,
            f"the credentials are not an admin's: XO lists no pool and answers 403 for "
            f"pool {probe_pool}, which the nodes name",
            fix,
        )
    if probe is ProbeAnswer.NOT_FOUND:
        return fail(
            XO_ADMIN,
            shown,
            f"XO lists no pool and does not know pool {probe_pool}, which the nodes name: "
            "wrong XO, or XO lost its pools",
            "check url points at the XO managing this cluster's VMs, and that the pools are "
            "connected (XO > Settings > Servers)",
        )
    return fail(
        XO_ADMIN,
        shown,
        f"XO lists {seen}: the credentials are not an admin's (non-admins see only what "
        "their ACLs allow), or XO has no pool connected",
        fix + "; and connect the pools in XO > Settings > Servers",
    )


def diagnose_events(url: str, *, available: bool | None, detail: str = "") -> Finding:
    """The change stream (``GET /rest/v0/events``, XO 5.113+)."""
    shown = redact_url(url)
    if available:
        return ok(XO_EVENTS, shown, "XO has the events endpoint: the CCM follows VM changes live")
    if available is None:
        return warn(
            XO_EVENTS,
            shown,
            f"could not open XO's event stream: {detail}",
            "the CCM retries it and polls meanwhile; check proxies let text/event-stream through",
        )
    return warn(
        XO_EVENTS,
        shown,
        "XO has no events endpoint (older than 5.113): the CCM polls every 30s, so it "
        "notices deleted, halted or migrated VMs later",
        "upgrade XO to 5.113 or newer",
    )


# -- Kubernetes ----------------------------------------------------------------
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
class Permission:
    """One request the CCM makes, as an access review asks it."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""

    @property
    def resource_name(self) -> str:
        name = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{name}.{self.group}" if self.group else name


def required_permissions(
    *, lease_namespace: str = "kube-system", startup_event_namespace: str = "kube-system"
) -> tuple[Permission, ...]:
    """Every verb of ``deploy/kubernetes/rbac.yaml``: what the CCM's code requests.

    Core events about Nodes go to ``default`` (as kube's controllers do);
    the startup ``FailedToCheckClient`` event to the pod's namespace.
    """
    nodes = tuple(Permission(v, "nodes") for v in ("get", "list", "watch", "patch", "delete"))
    return (
        *nodes,
        Permission("patch", "nodes", subresource="status"),
        Permission("create", "events", namespace="default"),
        Permission("patch", "events", namespace="default"),
        *(
            Permission(v, "events", group="events.k8s.io", namespace=startup_event_namespace)
            for v in ("get", "create", "update")
        ),
        *(
            Permission(v, "leases", group="coordination.k8s.io", namespace=lease_namespace)
            for v in ("get", "create", "update")
        ),
    )


def diagnose_access(identity: str, answers: Mapping[Permission, bool | None]) -> list[Finding]:
    """One line per resource the identity lacks verbs on; one ok line when nothing lacks.

    ``None`` answers are reviews that failed: they cannot prove anything.
    """
    missing: dict[str, list[str]] = {}
    undecided: list[str] = []
    for perm, allowed in answers.items():
        if allowed is None:
            undecided.append(f"{perm.verb} {perm.resource_name}")
        elif not allowed:
            where = f" in {perm.namespace}" if perm.namespace else ""
            missing.setdefault(f"{perm.resource_name}{where}", []).append(perm.verb)
    found = [
        fail(
            KUBE_ACCESS,
            identity,
            f"may not {', '.join(verbs)} {resource}: the CCM needs it",
            RBAC_FIX.format(identity=identity),
        )
        for resource, verbs in missing.items()
    ]
    if undecided:
        found.append(
            unknown(
                KUBE_ACCESS,
                identity,
                f"access reviews failed for {', '.join(undecided)}",
                "run doctor again; the API server must serve authorization.k8s.io/v1",
            )
        )
    if not found:
        note = (
            ""
            if identity.startswith("system:serviceaccount:")
            else " (doctor's own identity: run doctor in the CCM's pod to check the CCM's)"
        )
        found.append(
            ok(
                KUBE_ACCESS,
                identity,
                f"may make all {len(answers)} kinds of request the CCM makes{note}",
            )
        )
    return found


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
    return ok(KUBE_NODES, "nodes", f"{_plural(count, 'node')} listed")


# -- nodes -------------------------------------------------------------------------
VMLookup = SnapshotMatch


def find_vm(node: Node, index: VMIndex, *, match_by_name: bool = False) -> SnapshotMatch:
    """The node's VM in one snapshot, by the CCM's own rule (``domain.matching``).

    A foreign providerID is looked up by systemUUID too, only to tell the
    operator whether the node is an XO VM after all. A malformed providerID
    of ours finds nothing (:func:`diagnose_node` names the problem).
    """
    if node.provider_id and not is_ours(node.provider_id):
        return locate_in_snapshot(replace(node, provider_id=""), index, match_by_name=False)
    return locate_in_snapshot(node, index, match_by_name=match_by_name)


def vm_state(lookup: SnapshotMatch) -> VMState:
    """What the lifecycle controller would conclude from this lookup."""
    if lookup.vm is not None:
        return VMState.RUNNING if lookup.vm.running else VMState.SHUT_DOWN
    if isinstance(lookup.verdict, VMDeletedError):
        return VMState.DELETED
    return VMState.POOL_UNKNOWN


def _pools(pools: Iterable[str]) -> str:
    """``pool X`` or ``pools X, Y``."""
    names = sorted(pools)
    return f"pool {names[0]}" if len(names) == 1 else f"pools {', '.join(names)}"


_KUBELET_FIX = (
    "delete the node (kubectl delete node {name}) and restart kubelet with "
    "--cloud-provider=external: it registers again with the uninitialized taint and the "
    "CCM initializes it"
)
_IMMUTABLE_FIX = (
    "providerID cannot change: delete the node (kubectl delete node {name}) and restart "
    "kubelet with --cloud-provider=external and without --provider-id"
)
_POOL_FIX = (
    "reconnect the pool in XO (Settings > Servers); until then the CCM keeps the node, "
    "which is what you want during an XO outage"
)


def _describe_vm(vm: VM) -> str:
    return f"VM {vm.name_label} ({vm.id}), {vm.power_state.value}"


def _node_age(node: Node, now: datetime) -> float | None:
    return None if node.created_at is None else (now - node.created_at).total_seconds()


def diagnose_node(
    *,
    node: Node,
    lookup: VMLookup | None,
    host: Host | None = None,
    pool: Pool | None = None,
    now: datetime,
    options: CCMOptions = DEFAULT_OPTIONS,
    uninitialized_grace: float = DEFAULT_UNINITIALIZED_GRACE,
) -> list[Finding]:
    """Every finding about one node.

    ``lookup`` is None when XO could not be read: only what the Node object
    alone tells is checked then. ``host`` and ``pool`` are the VM's, from
    the same snapshot.
    """
    name = node.name
    tainted = node.has_taint(labels.UNINITIALIZED_TAINT_KEY)
    found: list[Finding] = []

    # -- providerID ----------------------------------------------------------------
    pid: ProviderID | None = None
    if not node.provider_id:
        if tainted:
            found.append(
                ok(NODE_PROVIDER_ID, name, "not set yet: the CCM sets it when it initializes")
            )
        else:
            found.append(
                fail(
                    NODE_PROVIDER_ID,
                    name,
                    "neither a providerID nor the uninitialized taint: kubelet probably runs "
                    "without --cloud-provider=external, so the CCM will never initialize "
                    "this node",
                    _KUBELET_FIX.format(name=name),
                )
            )
    elif not is_ours(node.provider_id):
        vm = lookup.vm if lookup else None
        if vm is not None:
            found.append(
                fail(
                    NODE_PROVIDER_ID,
                    name,
                    f"providerID {node.provider_id!r} is another provider's, yet the node is "
                    f"{_describe_vm(vm)}: the CCM ignores it (no labels, never deleted)",
                    _IMMUTABLE_FIX.format(name=name),
                )
            )
        else:
            found.append(
                warn(
                    NODE_PROVIDER_ID,
                    name,
                    f"providerID {node.provider_id!r} is not ours ({PREFIX}...): the CCM "
                    "ignores this node",
                    "nothing, if this node is not an XO VM; otherwise "
                    + _IMMUTABLE_FIX.format(name=name),
                )
            )
        return found
    else:
        try:
            pid = ProviderID.parse(node.provider_id)
        except ProviderIDError as err:
            found.append(
                fail(
                    NODE_PROVIDER_ID,
                    name,
                    f"{err}: the CCM cannot find its VM",
                    _IMMUTABLE_FIX.format(name=name),
                )
            )
            return found
        found.append(ok(NODE_PROVIDER_ID, name, node.provider_id, routine=True))

    vm = lookup.vm if lookup else None
    metadata = (
        instance_metadata(vm=vm, host=host, pool=pool, node=node, options=options)
        if vm is not None
        else None
    )

    # -- the VM ------------------------------------------------------------------------
    if lookup is not None:
        found.extend(_vm_findings(node, pid, lookup, options))

    # -- initialization --------------------------------------------------------------
    if tainted:
        age = _node_age(node, now)
        since = f"uninitialized for {format_age(age)}" if age is not None else "uninitialized"
        blocker, fix = "", ""
        if lookup is not None and vm is None:
            blocker, fix = "no VM found for it (see node.vm)", "fix what node.vm says"
        elif metadata is not None:
            wait = plan_initialization(node=node, metadata=metadata).wait_reason
            if wait:
                blocker = wait
                fix = (
                    "kubelet's --node-ip must be among the addresses XO reports for the VM "
                    "(guest tools must run): fix --node-ip or the VM's network"
                )
        if blocker:
            found.append(fail(NODE_INIT, name, f"{since}: {blocker}", fix))
        elif age is not None and age >= uninitialized_grace:
            cause = (
                "although its VM is found: the CCM is not initializing nodes"
                if vm is not None
                else "the CCM is not initializing it"
            )
            found.append(
                fail(
                    NODE_INIT,
                    name,
                    f"{since} {cause}",
                    "check the CCM runs and leads (kube.lease), with the cloud-node "
                    "controller enabled (--controllers), and read its logs",
                )
            )
        else:
            found.append(ok(NODE_INIT, name, f"{since}: being initialized"))

    if pid is None or vm is None or metadata is None:
        return found

    # -- labels (what cloud-node-label-sync would write) -------------------------------
    if not tainted:
        plan = plan_label_sync(node=node, metadata=metadata, sync_taints=options.tags.sync_taints)
        change = plan.change
        if change.empty:
            found.append(ok(NODE_LABELS, name, "labels match XO", routine=True))
        else:
            found.append(
                warn(
                    NODE_LABELS,
                    name,
                    f"differ from XO: {_label_diff(node, change)}",
                    "cloud-node-label-sync writes these every --node-status-update-frequency "
                    "(default 5m); if they stay, check the CCM runs that controller "
                    "(--controllers) and read its logs",
                )
            )
    for tag, why in metadata.invalid_tags:
        found.append(
            warn(
                NODE_TAGS,
                name,
                f"VM tag {tag!r} is ignored: {why}",
                f"correct or remove the tag on VM {vm.name_label} in XO",
            )
        )
    return found


#: Bookkeeping labels and beta twins, left out of a diff that already names their cause.
_QUIET_IN_DIFF = {
    labels.ORIGINAL_HOST_ID: "",
    labels.ORIGINAL_POOL_ID: "",
    labels.ZONE_BETA: labels.ZONE,
    labels.REGION_BETA: labels.REGION,
    labels.INSTANCE_TYPE_BETA: labels.INSTANCE_TYPE,
}


def _label_diff(node: Node, change: NodeChange) -> str:
    """``key: old -> new`` for each label (and tag taint) cloud-node-label-sync would change."""
    wanted = change.set_labels
    diffs = [
        f"{key}: {node.labels.get(key, '(none)')} -> {value}"
        for key, value in sorted(wanted.items())
        if key not in _QUIET_IN_DIFF
        or (_QUIET_IN_DIFF[key] and wanted.get(_QUIET_IN_DIFF[key]) != value)
    ]
    diffs += [f"{key}: {node.labels[key]} -> (removed)" for key in sorted(change.remove_labels)]
    diffs += [f"taint {t.key}:{t.effect.value} to add" for t in change.add_taints]
    diffs += [f"taint {t.key}:{t.effect.value} to remove" for t in change.remove_taints]
    return "; ".join(diffs) or "annotations only"


def _vm_findings(
    node: Node, pid: ProviderID | None, lookup: VMLookup, options: CCMOptions
) -> list[Finding]:
    name = node.name
    vm = lookup.vm
    if vm is not None:
        out: list[Finding] = []
        how = lookup.matched_by
        if how is MatchedBy.SYSTEM_UUID_SWAPPED:
            out.append(
                ok(
                    NODE_VM,
                    name,
                    f"{_describe_vm(vm)}, found by the little-endian form of systemUUID "
                    f"{node.system_uuid} (a UEFI guest): the CCM finds it the same way",
                )
            )
        elif how is MatchedBy.NAME_LABEL:
            out.append(ok(NODE_VM, name, f"{_describe_vm(vm)}, found by name (matchByName)"))
        elif how is MatchedBy.SYSTEM_UUID:
            out.append(ok(NODE_VM, name, f"{_describe_vm(vm)}, found by systemUUID"))
        else:
            twins = system_uuid_candidates(node.system_uuid)
            if twins and vm.id.lower() not in twins:
                out.append(
                    warn(
                        NODE_VM,
                        name,
                        f"providerID names {_describe_vm(vm)}, but kubelet reports systemUUID "
                        f"{twins[0]}, neither that VM's id nor its little-endian form: this Node "
                        "object was registered by another VM (cloned or re-created?)",
                        _IMMUTABLE_FIX.format(name=name),
                    )
                )
            else:
                out.append(ok(NODE_VM, name, _describe_vm(vm), routine=True))
        out.extend(_lifecycle_findings(node, lookup, options))
        return out

    if pid is None:
        if lookup.ambiguous:
            return [
                fail(
                    NODE_VM,
                    name,
                    f"{len(lookup.ambiguous)} VMs are named {name!r} "
                    f"({', '.join(lookup.ambiguous)}): the CCM refuses to guess",
                    "give the VMs unique names in XO, or make systemUUID the VM's uuid",
                )
            ]
        tried = ", ".join(lookup.tried) if lookup.tried else "no valid systemUUID"
        by_name = "" if options.match_by_name else "; or set matchByName: true in the cloud config"
        return [
            fail(
                NODE_VM,
                name,
                f"no VM found in XO ({tried}): the CCM cannot initialize this node",
                "kubelet's systemUUID (/sys/class/dmi/id/product_uuid) must be the VM's uuid "
                f"in XO: check the VM exists and the token can see it{by_name}",
            )
        ]

    if not node.ready:
        return _lifecycle_findings(node, lookup, options)
    if not lookup.pools:
        return [
            fail(
                NODE_VM,
                name,
                f"VM {pid.vm_id} not found in XO, and no pool to tell a deletion from an "
                "outage: the CCM keeps this node",
                "check the VM in XO; if it is gone for good, delete the node",
            )
        ]
    if lookup.unknown_pools:
        return [
            fail(
                NODE_VM,
                name,
                f"protected: VM {pid.vm_id} and its {_pools(lookup.unknown_pools)} are unknown to "
                "XO (pool disconnected?): the CCM does not treat the VM as deleted",
                _POOL_FIX,
            )
        ]
    return [
        fail(
            NODE_VM,
            name,
            f"VM {pid.vm_id} is gone from {_pools(lookup.pools)}, yet the node is Ready: "
            "kubelet runs on another machine than the providerID says",
            _IMMUTABLE_FIX.format(name=name),
        )
    ]


def _lifecycle_findings(node: Node, lookup: VMLookup, options: CCMOptions) -> list[Finding]:
    """What cloud-node-lifecycle does with a NotReady node of ours."""
    if node.ready:
        return []
    name = node.name
    state = vm_state(lookup)
    action = decide(node=node, vm_state=state)
    readiness = f"NotReady ({node.readiness.value})"
    if action is LifecycleAction.DELETE_NODE:
        vm_id = lookup.tried[0] if lookup.tried else "?"
        return [
            warn(
                NODE_LIFECYCLE,
                name,
                f"{readiness} and its VM {vm_id} is gone while {_pools(lookup.pools)} "
                f"{'is' if len(lookup.pools) == 1 else 'are'} known: "
                "cloud-node-lifecycle will delete this node (once it has seen the VM gone "
                f"twice, {options.deletion.confirm_delay:g}s apart)",
                "nothing, if the VM was deleted on purpose; otherwise restore it in XO now",
            )
        ]
    if state is VMState.POOL_UNKNOWN:
        if not lookup.pools:
            return [
                fail(
                    NODE_LIFECYCLE,
                    name,
                    f"{readiness}, VM {lookup.tried[0] if lookup.tried else '?'} not found and "
                    "no pool to confirm a deletion with: the CCM keeps the node",
                    "check the VM in XO; if it is gone for good, delete the node",
                )
            ]
        return [
            fail(
                NODE_LIFECYCLE,
                name,
                f"{readiness}, protected: VM {lookup.tried[0] if lookup.tried else '?'} and its "
                f"{_pools(lookup.unknown_pools)} are unknown to XO (pool disconnected?), so "
                "cloud-node-lifecycle keeps the node",
                _POOL_FIX,
            )
        ]
    vm = lookup.vm
    if state is VMState.SHUT_DOWN and vm is not None:
        taint = labels.SHUTDOWN_TAINT.key
        what = (
            f"carries the {taint} taint"
            if action is LifecycleAction.NOTHING
            else f"will get the {taint} taint"
        )
        return [
            warn(
                NODE_LIFECYCLE,
                name,
                f"{readiness}: its VM is {vm.power_state.value}, the node {what}",
                "start the VM in XO, or delete the node if it is decommissioned",
            )
        ]
    return [
        warn(
            NODE_LIFECYCLE,
            name,
            f"{readiness} although its VM runs: a kubelet or network problem on the VM, "
            "not the CCM's",
            "check kubelet on the VM (systemctl status kubelet; journalctl -u kubelet)",
        )
    ]


def diagnose_nodes(
    nodes: Sequence[Node],
    snapshot: InventorySnapshot | None,
    *,
    now: datetime,
    options: CCMOptions = DEFAULT_OPTIONS,
    uninitialized_grace: float = DEFAULT_UNINITIALIZED_GRACE,
) -> list[Finding]:
    """Every node against one snapshot (None: XO could not be read): no per-node I/O."""
    found: list[Finding] = []
    index = VMIndex(snapshot) if snapshot is not None else None
    for node in sorted(nodes, key=lambda n: n.name):
        lookup = (
            find_vm(node, index, match_by_name=options.match_by_name) if index is not None else None
        )
        vm = lookup.vm if lookup else None
        found.extend(
            diagnose_node(
                node=node,
                lookup=lookup,
                host=index.host(vm.container) if index and vm else None,
                pool=index.pool(vm.pool_id) if index and vm else None,
                now=now,
                options=options,
                uninitialized_grace=uninitialized_grace,
            )
        )
    if snapshot is None and nodes:
        found.append(
            warn(
                NODE_VM,
                _plural(len(nodes), "node"),
                "not checked against XO (VMs, labels, lifecycle): XO could not be read, "
                "or not as an admin",
                "fix the XO findings above, then run doctor again",
            )
        )
    return found


def pool_hints(nodes: Iterable[Node]) -> list[str]:
    """Pool ids the nodes of ours were placed in (``placement_pools``), most named first."""
    counts = Counter(
        p for node in nodes if is_ours(node.provider_id) for p in placement_pools(node)
    )
    return [pool_id for pool_id, _ in counts.most_common()]
