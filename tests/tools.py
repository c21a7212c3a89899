"""Binaries the tests need that a scripts/install-*.sh provides (helm, promtool).

Each is found once: from its ``XOCCM_*`` variable (scripts/test sets them), else by
running its install script, which builds or fetches it into ~/.cache on first use.
A conftest calls :meth:`InstalledTool.prepare` when collection is over, so that slow
first install never counts against a test's timeout, and its fixture calls
:meth:`InstalledTool.path`, which reports an install failure test by test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


class InstalledTool:
    def __init__(self, name: str, *, variable: str, script: str) -> None:
        self.name = name
        self.variable = variable
        self.script = REPO_ROOT / "scripts" / script
        self._found: Path | Exception | None = None

    def find(self) -> Path:
        override = os.environ.get(self.variable)
        if override:
            return Path(override)
        done = subprocess.run(
            ["bash", str(self.script)], check=True, capture_output=True, text=True, timeout=3600
        )
        return Path(done.stdout.strip().splitlines()[-1])

    def prepare(self, items: Sequence[pytest.Item]) -> None:
        """Find the tool now if any of ``items`` uses the fixture named after it."""
        if self._found is None and any(self.name in getattr(i, "fixturenames", ()) for i in items):
            try:
                self._found = self.find()
            except Exception as err:  # reported by the fixture, test by test
                self._found = err

    def path(self) -> Path:
        found = self._found if self._found is not None else self.find()
        if isinstance(found, Exception):
            pytest.fail(f"{self.name} unavailable ({self.script}): {found}")
        return found


def prepare_after_collection(session: pytest.Session, conftest: str, *tools: InstalledTool) -> None:
    """A conftest's ``pytest_collection_finish``: prepare ``tools`` and, if its tests
    need the real API server, the control-plane binaries (``conftest`` is its ``__file__``)."""
    here = Path(conftest).parent
    mine = [i for i in session.items if here in Path(str(i.path)).parents]
    for tool in tools:
        tool.prepare(mine)
    if any(i.get_closest_marker("integration") for i in mine):
        import tests.integration.conftest as integration

        integration.pytest_collection_finish(session)
