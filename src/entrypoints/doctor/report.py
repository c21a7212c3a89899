"""The report: the findings as an aligned table or as JSON, with request counts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from entrypoints.doctor.findings import Finding, Status, Summary, condense


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    xo_requests: Counter[str] = field(default_factory=Counter)
    kube_requests: Counter[str] = field(default_factory=Counter)

    def shown(self, *, all_nodes: bool) -> list[Finding]:
        return list(self.findings) if all_nodes else condense(self.findings)


#: Column widths stop growing there: a longer cell pushes only its own row's message.
_CAPS = (1, 20, 40)


def render_table(findings: Sequence[Finding], summary: Summary) -> str:
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


def render_json(report: Report, findings: Sequence[Finding], summary: Summary) -> str:
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
