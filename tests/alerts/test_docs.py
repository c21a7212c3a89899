"""docs/operations.md and docs/metrics.md stay true to the rules and the code."""

from __future__ import annotations

import re

import pytest

from adapters.observability.metrics import DELETION_OUTCOMES, STREAM_STATES

from .monitoring import OPERATIONS_DOC, REPO_ROOT, thresholds

METRICS_DOC = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "default"), thresholds().items())
def test_each_threshold_is_in_the_operations_table_with_its_default(
    name: str, default: str
) -> None:
    row = re.search(rf"^\| `{name}` \| `([^`]*)` \|", OPERATIONS_DOC.read_text(), re.MULTILINE)
    assert row, f"docs/operations.md has no row for threshold {name}"
    assert row[1] == default


@pytest.mark.parametrize("outcome", DELETION_OUTCOMES)
def test_each_deletion_outcome_is_documented(outcome: str) -> None:
    assert re.search(rf"^\| `{re.escape(outcome)}` \|", METRICS_DOC, re.MULTILINE), outcome


@pytest.mark.parametrize("state", STREAM_STATES)
def test_each_stream_state_is_documented(state: str) -> None:
    row = re.search(r"^\| `xenorchestra_event_stream_state` \|(.*)$", METRICS_DOC, re.MULTILINE)
    assert row and f"`{state}`" in row[1]
