"""What the CCM says when the lifecycle rule asks for a deletion that does not happen.

The rule (``decide``) says a node's VM is deleted; the guards may still stop the
deletion: a dry run, the breaker, its unknown state, or credentials that cannot
prove the absence. Each stop is counted, logged and told on the Node with its own
Event, so an operator reading ``kubectl describe node`` knows why it is still there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.model import EventType
from domain.policies.lifecycle import LifecycleAction


class DeletionOutcome(StrEnum):
    """What became of a deletion the lifecycle decision asked for (Metrics port)."""

    DELETED = "deleted"
    REFUSED = "refused"  # the breaker
    DRY_RUN = "dry-run"
    FAILED = "failed"
    UNVERIFIED = "unverified"  # the credentials may not see the VM: not an admin's


@dataclass(frozen=True, slots=True)
class Refusal:
    """How one stopped deletion is reported: metric outcome, log level, Event."""

    outcome: DeletionOutcome
    error: bool  # logged as an error (the operator must act) rather than a warning
    log: str
    event_type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class GuardState:
    """What the messages quote: the breaker's count and limit, its window, and why the
    credentials could not prove the absence."""

    in_window: int = 0
    limit: int = 0
    window: float = 0.0
    unverified: str = ""


def refusal(action: LifecycleAction, node: str, guards: GuardState) -> Refusal | None:
    """The report of a deletion ``action`` stopped by a guard (None: not such an action)."""
    if action is LifecycleAction.DRY_RUN_DELETE:
        return Refusal(
            DeletionOutcome.DRY_RUN,
            False,
            f"node {node}: VM deleted; --dry-run-deletions: not deleting",
            EventType.NORMAL,
            "DeletingNodeDryRun",
            f"Would delete node {node}: its VM no longer exists (dry run)",
        )
    if action is LifecycleAction.DELETION_RATE_LIMITED:
        return Refusal(
            DeletionOutcome.REFUSED,
            True,
            f"node {node}: VM deleted but {guards.in_window} deletions in the window "
            f"(limit {guards.limit}): deletions paused",
            EventType.WARNING,
            "NodeDeletionRateLimited",
            f"Not deleting node {node}: {guards.in_window} nodes deleted within "
            f"{guards.window:.0f}s (limit {guards.limit}); deletions are paused until an "
            "operator checks Xen Orchestra and resets the breaker "
            "(doctor --reset-deletion-breaker)",
        )
    if action is LifecycleAction.DELETION_BREAKER_UNKNOWN:
        return Refusal(
            DeletionOutcome.REFUSED,
            True,
            f"node {node}: VM deleted but the deletion breaker's state is unknown: not deleting",
            EventType.WARNING,
            "NodeDeletionBreakerUnknown",
            f"Not deleting node {node}: the deletion breaker's state cannot be read or "
            "written (see the CCM's log); no node is deleted until it can",
        )
    if action is LifecycleAction.DELETION_UNVERIFIED:
        return Refusal(
            DeletionOutcome.UNVERIFIED,
            True,
            f"node {node}: VM absent from XO, not deleting: {guards.unverified}",
            EventType.WARNING,
            "NodeDeletionUnverified",
            f"Not deleting node {node}: its VM is absent from Xen Orchestra, but "
            f"{guards.unverified}; use the token of an XO admin",
        )
    return None
