"""Rendering the Helm chart and reading the plain manifests, for the tests.

Every rendered or shipped object is a plain dict, as ``kubectl`` would send it.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "helm" / "xenorchestra-cloud-controller-manager"
MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
RELEASE = "xenorchestra-cloud-controller-manager"
NAMESPACE = "kube-system"

#: ``default`` (no values file) and every ``ci/<name>-values.yaml``.
COMBINATIONS = (
    "default",
    *sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")),
)
#: Every plain manifest a user applies with kubectl (relative to deploy/kubernetes).
PLAIN_MANIFESTS = tuple(
    str(p.relative_to(MANIFESTS)) for p in sorted(MANIFESTS.rglob("*.yaml")) if p.is_file()
)

Obj = dict[str, Any]


class RenderError(Exception):
    """``helm template`` refused the values; the message is helm's stderr."""


def load_documents(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(helm: Path, *values_files: Path, set_values: Sequence[str] = ()) -> list[Obj]:
    argv = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values_files:
        argv += ["--values", str(path)]
    for item in set_values:
        argv += ["--set", item]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return load_documents(done.stdout)


def values_files(combination: str) -> tuple[Path, ...]:
    return () if combination == "default" else (CHART / "ci" / f"{combination}-values.yaml",)


def helm_lint(helm: Path, combination: str) -> subprocess.CompletedProcess[str]:
    """``helm lint --strict`` of the chart with a combination's values."""
    argv = [str(helm), "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for path in values_files(combination):
        argv += ["--values", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@functools.cache
def _rendered(helm: Path, combination: str) -> tuple[Obj, ...]:
    return tuple(helm_template(helm, *values_files(combination)))


def render(helm: Path, combination: str) -> list[Obj]:
    """The chart rendered for ``default`` or a ``ci/`` values file (cached, copied)."""
    return copy.deepcopy(list(_rendered(helm, combination)))


def manifest(relative: str) -> list[Obj]:
    return load_documents((MANIFESTS / relative).read_text(encoding="utf-8"))


def values(combination: str) -> Obj:
    """The chart's values for a combination (defaults, then the ci file on top)."""
    merged = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    if combination != "default":
        path = CHART / "ci" / f"{combination}-values.yaml"
        _merge(merged, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def _merge(base: Obj, top: Mapping[str, Any]) -> None:
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


# -- reading objects -----------------------------------------------------------
def of_kind(docs: Iterable[Obj], *kinds: str) -> list[Obj]:
    return [d for d in docs if d["kind"] in kinds]


def only(docs: Iterable[Obj], *kinds: str) -> Obj:
    found = of_kind(docs, *kinds)
    assert len(found) == 1, f"expected one {'/'.join(kinds)}, got {len(found)}"
    return found[0]


def workload(docs: Iterable[Obj]) -> Obj:
    return only(docs, "Deployment", "DaemonSet")


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def ccm_container(obj: Obj) -> Obj:
    [container] = pod_spec(obj)["containers"]
    return container


def flags(container: Mapping[str, Any]) -> dict[str, str]:
    """``--name=value`` arguments as a mapping (``--name`` alone maps to "")."""
    out: dict[str, str] = {}
    for arg in container.get("args", []):
        name, _, value = str(arg).partition("=")
        out[name] = value
    return out


def volume(obj: Obj, name: str) -> Obj | None:
    return next((v for v in pod_spec(obj).get("volumes", []) if v["name"] == name), None)


def mount(container: Mapping[str, Any], name: str) -> Obj | None:
    return next((m for m in container.get("volumeMounts", []) if m["name"] == name), None)


def role_rules(docs: Iterable[Obj]) -> set[tuple[str, str, str]]:
    """The grants of every ClusterRole and Role as (apiGroup, resource, verb) triples."""
    return {
        (group, resource, verb)
        for role in of_kind(docs, "ClusterRole", "Role")
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
