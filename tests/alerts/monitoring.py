"""The shipped alerts and dashboard, read the way Prometheus and Grafana read them.

PromQL is parsed with ``promql-parser`` (the Rust parser's Python binding), never
with regular expressions: every metric name, label matcher and grouping label an
expression uses comes from its syntax tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES_FILE = MONITORING / "xenorchestra-ccm.rules.yaml"
PLAIN_RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "dashboard.json"
PROMTOOL_TESTS = Path(__file__).parent / "promtool"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
RENDER_SCRIPT = REPO_ROOT / "scripts" / "render-monitoring"

#: Labels Prometheus adds when it scrapes (not in /metrics itself).
TARGET_LABELS = frozenset({"job", "instance"})
#: How every rule selects this CCM's series (the chart swaps it for its own).
DEFAULT_JOB_SELECTOR = 'job=~".*xenorchestra-cloud-controller-manager.*"'
DEFAULT_RUNBOOK_BASE = "https://docs.invalid/xenorchestra-cloud-controller-manager/operations.md"
#: A tunable's marker at the end of its line in the rule file.
THRESHOLD_MARKER = re.compile(r"(\S+)[ \t]+#[ \t]*threshold:[ \t]*(\w+)[ \t]*$", re.MULTILINE)
#: Grafana's interval variables, as a Prometheus data source would expand them.
_GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
#: Grafana's ``$name`` / ``${name}`` template variables (all of them ``=~`` regexes here).
_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


# -- the files --------------------------------------------------------------------
def rule_groups(text: str | None = None) -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8") if text is None else text)
    groups: list[dict[str, Any]] = doc["groups"]
    return groups


def alerts(groups: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [r for g in (groups or rule_groups()) for r in g["rules"] if "alert" in r]


def alert_names() -> list[str]:
    return [a["alert"] for a in alerts()]


def thresholds() -> dict[str, str]:
    """Every ``# threshold: <name>`` marker of the rule file and its default value."""
    found: dict[str, str] = {}
    for value, name in THRESHOLD_MARKER.findall(RULES_FILE.read_text(encoding="utf-8")):
        assert name not in found, f"threshold {name} is marked twice"
        found[name] = value
    return found


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


def panels(board: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (rows themselves excluded)."""
    for panel in (board or dashboard())["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(board: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, Grafana variables expanded."""
    return [(p["title"], grafana_to_promql(t["expr"])) for p in panels(board) for t in p["targets"]]


def variable_queries(board: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """(variable, PromQL series selector) of the ``label_values(<selector>, <label>)`` variables."""
    out = []
    for var in (board or dashboard())["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert query.startswith("label_values(") and query.endswith(")"), query
        selector, _, label = query[len("label_values(") : -1].rpartition(",")
        assert label.strip(), query
        out.append((var["name"], grafana_to_promql(selector.strip())))
    return out


def grafana_to_promql(expr: str) -> str:
    for variable, value in _GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return _GRAFANA_VARIABLE.sub(".+", expr)


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def doc_anchors(path: Path = OPERATIONS_DOC) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return {github_anchor(h) for h in headings}


# -- what an expression reads ------------------------------------------------------
@dataclass
class Selector:
    """One series selector of an expression, and the labels the expression needs on it."""

    name: str
    #: (label, operator, value): operator is one of = != =~ !~
    matchers: list[tuple[str, str, str]]
    #: labels grouped or matched on above the selector (``by``, ``on``)
    grouped_by: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        inner = ",".join(f'{k}{op}"{v}"' for k, op, v in self.matchers)
        return f"{self.name}{{{inner}}}"


_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


def _op(op: Any) -> str:
    return next(text for known, text in _OPS if op == known)


def selectors(expr: str) -> list[Selector]:
    """Every series selector in ``expr`` (raises ValueError if it does not parse)."""
    return _selectors(promql_parser.parse(expr), frozenset())


def _selectors(node: Any, grouped: frozenset[str]) -> list[Selector]:
    if isinstance(node, promql_parser.VectorSelector):
        assert node.name, f"a selector without a metric name: {node.prettify()}"
        assert not node.matchers.or_matchers, f"'or' inside a selector: {node.prettify()}"
        matchers = [
            (m.name, _op(m.op), m.value) for m in node.matchers.matchers if m.name != "__name__"
        ]
        return [Selector(node.name, matchers, set(grouped))]
    if isinstance(node, promql_parser.MatrixSelector):
        return _selectors(node.vector_selector, grouped)
    if isinstance(node, promql_parser.AggregateExpr):
        modifier = node.modifier
        if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
            grouped = grouped | set(modifier.labels)
        found = _selectors(node.expr, grouped)
        if node.param is not None:
            found += _selectors(node.param, frozenset())
        return found
    if isinstance(node, promql_parser.BinaryExpr):
        # Labels grouped on above reach both sides, except the right of "and" and
        # "unless" (filters: their labels do not survive); "on" labels both sides.
        matching = node.modifier.matching if node.modifier is not None else None
        on: set[str] = set()
        if matching is not None and matching.type == promql_parser.LabelModifierType.Include:
            on = set(matching.labels)
        right = frozenset() if str(node.op) in ("and", "unless") else grouped
        return _selectors(node.lhs, grouped | on) + _selectors(node.rhs, right | on)
    if isinstance(node, promql_parser.Call):
        return [s for arg in node.args for s in _selectors(arg, grouped)]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _selectors(node.expr, grouped)
    if isinstance(node, promql_parser.SubqueryExpr):
        return _selectors(node.expr, grouped)
    if isinstance(node, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return []
    raise AssertionError(f"unexpected PromQL node {type(node).__name__}")


# -- what /metrics exposes -------------------------------------------------------------
Samples = dict[str, list[dict[str, str]]]


def exposed(text: str) -> Samples:
    """Sample name (``_total``, ``_bucket``... included) -> the label sets exposed."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def _matches(labels: Mapping[str, str], label: str, op: str, value: str) -> bool:
    have = labels.get(label, "")
    if op == "=":
        return have == value
    if op == "!=":
        return have != value
    if op == "=~":
        return re.fullmatch(value, have) is not None
    return re.fullmatch(value, have) is None


def missing(selector: Selector, samples: Samples) -> str | None:
    """Why ``selector`` would find nothing in ``samples`` (None: it finds series,
    with every label the expression groups or matches on).

    ``=`` and ``=~`` matchers must all match one series; a ``!=`` or ``!~`` matcher
    excludes, so its label need only exist (``error!="not_found"`` is right to
    select nothing while XO has only answered 404s).
    """
    if selector.name not in samples:
        return f"{selector.name} is not exported"
    wanted = [m for m in selector.matchers if m[0] not in TARGET_LABELS]
    positive = [m for m in wanted if m[1] in ("=", "=~")]
    found = [s for s in samples[selector.name] if all(_matches(s, *m) for m in positive)]
    if not found:
        return f"no {selector.name} series matches {selector}"
    excluded = {label for label, op, _ in wanted if op in ("!=", "!~")}
    for label in sorted((selector.grouped_by | excluded) - TARGET_LABELS):
        if not any(label in s for s in found):
            return f"{selector} has no label {label!r} to group or match on"
    return None
