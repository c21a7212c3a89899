"""Labels and taints from XO tags, and the bookkeeping that lets them be removed.

The CCM records the keys it set from tags in node annotations; removing a
tag then removes exactly its label, and a label or taint somebody else set
is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain import labels as L
from domain.model import Taint, TaintEffect
from domain.options import TagOptions

MANAGED_LABELS = "node.k8s.xenorchestra/tag-labels"
MANAGED_TAINTS = "node.k8s.xenorchestra/tag-taints"

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: Kubernetes-owned label namespaces an operator may still target from tags.
_ALLOWED_K8S_PREFIXES = ("node-role.kubernetes.io",)


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label/taint key, or None."""
    prefix, slash, name = key.rpartition("/")
    if not _NAME.match(name):
        return (
            f"name {name!r} must be 1-63 alphanumerics, '-', '_' or '.', "
            "starting and ending alphanumeric"
        )
    if slash:
        if len(prefix) > 253 or not all(_DNS_LABEL.match(p) for p in prefix.split(".")):
            return f"prefix {prefix!r} must be a lower-case DNS subdomain"
        if L.in_kubernetes_namespace(key) and prefix not in _ALLOWED_K8S_PREFIXES:
            return f"prefix {prefix!r} belongs to Kubernetes"
        if L.XO_NAMESPACE in prefix:
            return f"prefix {prefix!r} is reserved for the CCM's own labels"
    return None


def value_problem(value: str) -> str | None:
    if not _VALUE.match(value):
        return f"value {value!r} must be at most 63 alphanumerics, '-', '_' or '.'"
    return None


@dataclass(frozen=True, slots=True)
class TagResult:
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    invalid: tuple[tuple[str, str], ...]  # (tag, why)
    #: the instance type a valid instance-type tag asks for, else "" (the Go CCM's format)
    instance_type: str = ""


def _instance_type(tags: list[str], prefix: str) -> tuple[str, list[tuple[str, str]]]:
    """The instance type the tags name, and the tags refused. XO's tags are a set with
    no order, so two different values name nothing (each is reported) rather than
    whichever came first; an empty or invalid value is reported too."""
    values = {tag[len(prefix) :] for tag in tags}
    if len(values) > 1:
        why = f"several instance-type tags ({', '.join(sorted(values))}): none is used"
        return "", [(tag, why) for tag in sorted(tags)]
    (value,) = values
    problem = "empty value" if not value else value_problem(value)
    return ("", [(tags[0], problem)]) if problem else (value, [])


def from_tags(tags: Iterable[str], options: TagOptions) -> TagResult:
    """The labels, taints and instance type the VM's tags ask for, and the tags that
    are invalid."""
    out_labels: dict[str, str] = {}
    out_taints: dict[tuple[str, TaintEffect], Taint] = {}
    invalid: list[tuple[str, str]] = []
    type_tags: list[str] = []
    for tag in tags:
        if options.instance_type_prefix and tag.startswith(options.instance_type_prefix):
            type_tags.append(tag)  # first: a label prefix such as "k8s." may cover it
        elif options.label_prefix and tag.startswith(options.label_prefix):
            key, eq, value = tag[len(options.label_prefix) :].partition("=")
            problem = (
                key_problem(key) or value_problem(value) or (None if eq else "missing '=<value>'")
            )
            if problem:
                invalid.append((tag, problem))
            else:
                out_labels[key] = value
        elif options.taint_prefix and tag.startswith(options.taint_prefix):
            spec, colon, effect_text = tag[len(options.taint_prefix) :].rpartition(":")
            key, _, value = spec.partition("=")
            try:
                effect = TaintEffect(effect_text)
            except ValueError:
                effect = None
            problem = (
                (None if colon else "missing ':<Effect>'")
                or (
                    None
                    if effect
                    else f"effect {effect_text!r} is not NoSchedule, PreferNoSchedule or NoExecute"
                )
                or key_problem(key)
                or value_problem(value)
            )
            if problem or effect is None:
                invalid.append((tag, problem or "invalid effect"))
            else:
                out_taints[(key, effect)] = Taint(key=key, value=value, effect=effect)
    chosen = ""
    if type_tags:
        chosen, refused = _instance_type(type_tags, options.instance_type_prefix)
        invalid += refused
    return TagResult(out_labels, tuple(out_taints.values()), tuple(invalid), chosen)


def managed(annotations: Mapping[str, str], key: str) -> frozenset[str]:
    raw = annotations.get(key, "")
    return frozenset(k for k in raw.split(",") if k)


def encode(keys: Iterable[str]) -> str:
    return ",".join(sorted(set(keys)))


def taint_id(taint: Taint) -> str:
    return f"{taint.key}:{taint.effect.value}"


def plan_tag_change(
    *,
    node_labels: Mapping[str, str],
    node_taints: tuple[Taint, ...],
    annotations: Mapping[str, str],
    wanted_labels: Mapping[str, str],
    wanted_taints: tuple[Taint, ...] | None,
) -> tuple[dict[str, str], frozenset[str], tuple[Taint, ...], tuple[Taint, ...], dict[str, str]]:
    """Labels to set and remove, taints to add and remove, annotations to set.

    Keys already on the node that the CCM did not set from a tag are left
    alone; keys it set whose tag disappeared are removed. ``wanted_taints``
    None means taints are not synced now (only labels are).
    """
    owned = managed(annotations, MANAGED_LABELS)
    set_labels: dict[str, str] = {}
    now_owned: set[str] = set()
    for key, value in wanted_labels.items():
        if key in node_labels and key not in owned:
            continue  # somebody else's label: never touched
        now_owned.add(key)
        if node_labels.get(key) != value:
            set_labels[key] = value
    remove_labels = frozenset(k for k in owned - now_owned if k in node_labels)
    set_annotations: dict[str, str] = {}
    if now_owned != owned:
        set_annotations[MANAGED_LABELS] = encode(now_owned)

    add: list[Taint] = []
    remove: list[Taint] = []
    if wanted_taints is not None:
        owned_t = managed(annotations, MANAGED_TAINTS)
        present = {taint_id(t): t for t in node_taints}
        now_owned_t: set[str] = set()
        for taint in wanted_taints:
            tid = taint_id(taint)
            current = present.get(tid)
            if current is not None and tid not in owned_t:
                continue
            now_owned_t.add(tid)
            if current is None:
                add.append(taint)
            elif current.value != taint.value:
                remove.append(current)
                add.append(taint)
        remove += [present[tid] for tid in owned_t - now_owned_t if tid in present]
        if now_owned_t != owned_t:
            set_annotations[MANAGED_TAINTS] = encode(now_owned_t)
    return set_labels, remove_labels, tuple(add), tuple(remove), set_annotations
