"""The container image's recipe, read without building it.

One Dockerfile, two builders: ``docker build`` and scripts/build-image (no
engine; it runs the Dockerfile's own instructions). Here: the runtime stage's
settings, the lock, the build context .dockerignore lets through (never the
test kits), and that the engine-free builder understands every instruction.
The image itself, built and then taken apart and run, is checked by
tests/node/test_image.py (it needs root: mmdebstrap and a chroot).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from scripts.build_image.build import BuildError, plan
from scripts.build_image.debian import DebianError
from scripts.build_image.dockerfile import context_files, stages

from .chart import REPO_ROOT, values
from .checks import RUN_AS

DOCKERFILE = REPO_ROOT / "Dockerfile"
IMAGE_VENV = "/opt/ccm"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPT = "xenorchestra-cloud-controller-manager"
BUILD, RUNTIME = stages(DOCKERFILE.read_text(encoding="utf-8"))
CONTEXT_TOP = {"requirements.lock", "pyproject.toml", "README.md", "src"}
KITS_CONTRACT = "The controller process never loads the kits"
#: The kits that ship: product code an embedder composes the services on.
SHIPPED_KITS = {"adapters.memory"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line.strip())
        assert match, f"not an exact pin: {line!r}"
        out[normalize(match[1])] = match[2]
    return out


def test_the_image_runs_unprivileged_and_never_writes_bytecode() -> None:
    user, _, group = RUNTIME.all("USER")[-1].partition(":")
    assert int(user) == RUN_AS and int(group or user) == RUN_AS
    assert values("default")["podSecurityContext"]["runAsUser"] == int(user)
    env = RUNTIME.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the root filesystem is read-only
    assert env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
    assert json.loads(RUNTIME.all("ENTRYPOINT")[-1]) == [SCRIPT]
    assert SCRIPT in PYPROJECT["project"]["scripts"]
    assert RUNTIME.all("EXPOSE") == [str(values("default")["port"])]


def test_the_runtime_gets_only_the_build_stages_venv_on_the_same_base() -> None:
    assert BUILD.name == "build"
    copies = RUNTIME.all("COPY")
    assert copies == [f"--from={BUILD.name} {IMAGE_VENV} {IMAGE_VENV}"]
    # The venv's interpreter links point into the base image: the same Debian release,
    # and Debian's python3 in both stages.
    assert RUNTIME.base == BUILD.base
    recipe = plan(DOCKERFILE.read_text(encoding="utf-8"))
    build_base, runtime_base = recipe.bases
    assert build_base.suite == runtime_base.suite
    assert "python3" in runtime_base.packages
    assert set(build_base.packages) == {"python3", "python3-venv"}


def test_the_engine_free_builder_understands_every_instruction() -> None:
    recipe = plan(DOCKERFILE.read_text(encoding="utf-8"))
    assert [s.name for s in recipe.stages] == ["build", None]
    assert [k for k, _ in recipe.steps[0]].count("RUN") == 3  # venv, the lock, the project


@pytest.mark.parametrize(
    ("dockerfile", "problem"),
    [
        pytest.param("FROM python:3.11-slim\n", "only debian:<suite>-slim", id="other-base"),
        pytest.param(
            "FROM debian:bookworm-slim\nRUN apt-get install -y curl\n"
            "FROM debian:bookworm-slim\nCOPY --from=0 /a /a\n",
            "no earlier stage|COPY",
            id="unnamed-stage",
        ),
        pytest.param(
            "FROM debian:bookworm-slim AS b\nADD x /x\nFROM debian:bookworm-slim\n",
            "ADD in a build stage",
            id="add",
        ),
        pytest.param(
            "FROM debian:bookworm-slim\nRUN echo hi\n", "RUN in the final stage", id="final-run"
        ),
        pytest.param(
            "FROM debian:bookworm-slim\nENTRYPOINT ccm --help\n",
            r"exec \(JSON\) form",
            id="shell-form",
        ),
    ],
)
def test_the_builder_refuses_what_it_does_not_understand(dockerfile: str, problem: str) -> None:
    with pytest.raises((BuildError, DebianError), match=problem):
        plan(dockerfile)


def test_the_lock_pins_every_runtime_dependency_at_the_pyproject_version() -> None:
    wanted = pins(PYPROJECT["project"]["dependencies"])
    lock_lines = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    locked = pins([line for line in lock_lines if line.strip() and not line.startswith("#")])
    assert {name: locked.get(name) for name in wanted} == wanted


def test_the_build_context_holds_exactly_what_the_image_copies() -> None:
    copied = context_files(REPO_ROOT)
    assert {path.split("/")[0] for path in copied} == CONTEXT_TOP
    kits = kit_directories()
    sources = {
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "src").rglob("*.py")
        if "__pycache__" not in p.parts and not any(k in p.parents for k in kits)
    }
    assert sources <= set(copied)
    generated = [p for p in copied if "__pycache__" in p or p.endswith((".pyc", ".egg-info"))]
    assert generated == [] and not any(".egg-info/" in p for p in copied)


def kit_directories() -> list[Path]:
    """The directories of the kits the controller process never loads, but those
    that ship (the in-memory adapters)."""
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    contract = next(c for c in contracts if c["name"].startswith(KITS_CONTRACT))
    assert set(contract["forbidden_modules"]) >= SHIPPED_KITS
    out = []
    for module in sorted(set(contract["forbidden_modules"]) - SHIPPED_KITS):
        path = REPO_ROOT / "src" / Path(*module.split("."))
        assert path.is_dir(), f"test kit {module} is not a package under src/ any more"
        out.append(path)
    assert out, "no test kit left out of the image"
    return out


def test_the_test_kits_are_left_out_of_the_image() -> None:
    """.dockerignore is the one place that leaves them out, for both builders; this
    holds it to the import-linter contract that names them (move a kit, and this
    says which line to change)."""
    copied = context_files(REPO_ROOT)
    for kit in kit_directories():
        rel = kit.relative_to(REPO_ROOT).as_posix()
        assert not [p for p in copied if p.startswith(rel + "/")], (
            f"{rel} would be shipped in the image: add it to .dockerignore"
        )
