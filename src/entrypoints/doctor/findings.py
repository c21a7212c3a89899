"""The report's vocabulary: a finding, its status, the check names, the exit code.

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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {Status.OK: "✔", Status.WARN: "!", Status.FAIL: "✗", Status.UNKNOWN: "?"}


CONFIG = "config"


XO_URL = "xo.url"


XO_TLS = "xo.tls"


XO_REACHABLE = "xo.reachable"


XO_TOKEN = "xo.token"


XO_ADMIN = "xo.admin"


XO_EVENTS = "xo.events"


TOPOLOGY = "topology"


KUBE_API = "kube.api"


KUBE_ACCESS = "kube.access"


KUBE_LEASE = "kube.lease"


KUBE_NODES = "kube.nodes"


KUBE_CSR = "kube.csr"


NODE_PROVIDER_ID = "node.providerID"


NODE_VM = "node.vm"


NODE_INIT = "node.init"


NODE_LABELS = "node.labels"


NODE_TAGS = "node.tags"


NODE_LIFECYCLE = "node.lifecycle"


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
            plural(routine[check], "node"),
            f"all {total} nodes ok"
            if routine[check] == total
            else f"{routine[check]} of {total} nodes ok",
        )
        for check, total in totals.items()
        if routine[check]
    ]
    details = [f for f in findings if f.check.startswith("node.") and not f.routine]
    return [*general, *folded, *details]


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


def plural(n: int, word: str) -> str:
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
