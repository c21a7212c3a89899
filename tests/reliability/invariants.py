"""What must hold whatever goes wrong, checked on every change the API server shows.

A :class:`InvariantTracker` is a :class:`tools.bench.cluster.NodeWatch` hook: it
sees every version of every Node of a :class:`tests.reliability.world.World`
and records a violation when

- a Node is deleted while its VM still exists in XO, or while it was Ready
  (the CCM may only delete a NotReady Node whose VM is really gone);
- a label the CCM set (zone, region, instance type, the ``k8s.xenorchestra``
  ones) or a label someone else set disappears once it was there;
- a label holds a value the VM never had (a zone that is not a host the VM
  ran on, a pool id as a zone, a region that is not its pool, GA and beta
  twins that differ, ``original_host_id`` rewritten, an invalid label value).

What the VM "ever had" comes from the world, which records each host and
pool before it moves a VM there.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain import labels
from tools.bench.cluster import NodeView

if TYPE_CHECKING:
    from tests.reliability.world import World

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
HOST_KEYS = (labels.ZONE, labels.ZONE_BETA, labels.HOST_ID)
POOL_KEYS = (labels.REGION, labels.REGION_BETA, labels.POOL_ID)
TYPE_KEYS = (labels.INSTANCE_TYPE, labels.INSTANCE_TYPE_BETA)
WRITE_ONCE_KEYS = (labels.ORIGINAL_HOST_ID, labels.ORIGINAL_POOL_ID)
TWINS = ((labels.ZONE, labels.ZONE_BETA), (labels.REGION, labels.REGION_BETA))


def tracked(key: str) -> bool:
    """Labels that, once on a Node, must stay (the CCM's and the operator's)."""
    return (
        key in HOST_KEYS
        or key in POOL_KEYS
        or key in TYPE_KEYS
        or labels.XO_NAMESPACE in key
        or key.startswith("team.example/")
    )


@dataclass
class InvariantTracker:
    world: World
    violations: list[str] = field(default_factory=list)
    checks: Counter[str] = field(default_factory=Counter)
    _labels: dict[str, dict[str, str]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def violation(self, message: str) -> None:
        self.violations.append(f"t+{time.monotonic() - self.started:.1f}s {message}")

    def __call__(self, name: str, before: NodeView | None, after: NodeView | None) -> None:
        member = self.world.members.get(name)
        if member is None:
            return
        if after is None:
            self._deleted(name, before)
        else:
            self._labels_ok(name, after)

    def _deleted(self, name: str, before: NodeView | None) -> None:
        self.checks["deletion justified"] += 1
        member = self.world.members[name]
        self._labels.pop(name, None)
        vm_exists = member.vm in self.world.xo.state.objects["VM"]
        was_ready = before.ready if before is not None else member.ready
        if vm_exists:
            self.violation(f"{name} deleted while its VM {member.vm} exists")
        elif was_ready:
            self.violation(f"{name} deleted while Ready")

    def _labels_ok(self, name: str, view: NodeView) -> None:
        self.checks["labels kept and valid"] += 1
        member = self.world.members[name]
        history = self.world.history[member.vm]
        seen = self._labels.setdefault(name, {})
        for key, old in seen.items():
            if key not in view.labels:
                self.violation(f"{name}: label {key} lost (was {old!r})")
        for key, value in view.labels.items():
            if not tracked(key):
                continue
            if key in WRITE_ONCE_KEYS and key in seen and seen[key] != value:
                self.violation(f"{name}: {key} rewritten {seen[key]!r} -> {value!r}")
            seen[key] = value
            if len(value) > 63 or not _LABEL_VALUE.match(value):
                self.violation(f"{name}: {key}={value!r} is not a valid label value")
            elif (
                key in HOST_KEYS or key == labels.ORIGINAL_HOST_ID
            ) and value not in history.hosts:
                self.violation(
                    f"{name}: {key}={value!r} is not a host VM {member.vm} ran on "
                    f"({sorted(history.hosts)})"
                )
            elif (
                key in POOL_KEYS or key == labels.ORIGINAL_POOL_ID
            ) and value not in history.pools:
                self.violation(f"{name}: {key}={value!r} is not a pool of VM {member.vm}")
            elif key in TYPE_KEYS and value not in history.types:
                self.violation(f"{name}: {key}={value!r}, VM sizes were {sorted(history.types)}")
            elif key == labels.VM_NAME_LABEL and value not in history.names:
                self.violation(f"{name}: {key}={value!r} is not a name of the VM")
            elif key.startswith("team.example/") and value != member.team:
                self.violation(f"{name}: operator label {key} changed to {value!r}")
        for ga, beta in TWINS:
            if ga in view.labels and beta in view.labels and view.labels[ga] != view.labels[beta]:
                self.violation(f"{name}: {ga}={view.labels[ga]!r} but {beta}={view.labels[beta]!r}")
