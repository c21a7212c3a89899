"""The layout rules a machine can check, beyond import-linter's contracts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_mypy_strict_covers_every_top_level_package() -> None:
    mypy = _pyproject()["tool"]["mypy"]
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert mypy["strict"] is True
    assert set(mypy["packages"]) == packages
