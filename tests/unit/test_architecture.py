"""The layout rules a machine can check, beyond import-linter's contracts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _modules(package: Path) -> set[str]:
    """The direct sub-modules and sub-packages of a package directory, by dotted name."""
    prefix = package.relative_to(SRC).as_posix().replace("/", ".")
    found = set()
    for child in package.iterdir():
        if child.suffix == ".py" and child.stem != "__init__":
            found.add(f"{prefix}.{child.stem}")
        elif child.is_dir() and (child / "__init__.py").exists():
            found.add(f"{prefix}.{child.name}")
    return found


def test_mypy_strict_covers_every_top_level_package() -> None:
    mypy = _pyproject()["tool"]["mypy"]
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert mypy["strict"] is True
    assert set(mypy["packages"]) == packages


def test_every_entrypoint_module_has_a_room() -> None:
    # The rooms contract only binds the modules it names: a new module of
    # entrypoints must take its place in the order (the test kits' commands stay
    # out of it, as production code never imports them).
    contracts = _pyproject()["tool"]["importlinter"]["contracts"]
    rooms = next(c for c in contracts if c.get("containers") == ["entrypoints"])
    placed = {
        f"entrypoints.{name.strip()}" for layer in rooms["layers"] for name in layer.split("|")
    }
    test_kits = {"entrypoints.testkits"}
    assert _modules(SRC / "entrypoints") - test_kits == placed
