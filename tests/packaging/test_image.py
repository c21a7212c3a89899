"""The container image, checked without a container engine (none runs here).

What can be checked is: the runtime stage's settings, the lock, the build
context .dockerignore lets through, and the build stage itself, replayed in a
clean venv from a copy of that context, ending with the console script
starting. That replay needs the package index (pip's cache is used); set
``XOCCM_SKIP_IMAGE_BUILD=1`` to skip it explicitly (it runs by default).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from .chart import REPO_ROOT, values
from .checks import RUN_AS
from .image import DOCKERFILE, IMAGE_VENV, build_context, replay_build_stage, stages

SKIP_BUILD = "XOCCM_SKIP_IMAGE_BUILD"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPT = "xenorchestra-cloud-controller-manager"
BUILD, RUNTIME = stages(DOCKERFILE.read_text(encoding="utf-8"))
CONTEXT_TOP = {"requirements.lock", "pyproject.toml", "README.md", "src"}


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
    # The venv's interpreter links point into the base image: it must be the same.
    assert RUNTIME.base == BUILD.base
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    base_version = re.search(r":(\d+\.\d+)", BUILD.base)
    assert base_version is not None
    assert tuple(map(int, base_version[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_the_lock_pins_every_runtime_dependency_at_the_pyproject_version() -> None:
    wanted = pins(PYPROJECT["project"]["dependencies"])
    lock_lines = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    locked = pins([line for line in lock_lines if line.strip() and not line.startswith("#")])
    assert {name: locked.get(name) for name in wanted} == wanted


def test_the_build_context_holds_exactly_what_the_image_copies(tmp_path: Path) -> None:
    copied = build_context(REPO_ROOT, tmp_path)
    assert {path.split("/")[0] for path in copied} == CONTEXT_TOP
    sources = {
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "src").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources <= set(copied)
    generated = [p for p in copied if "__pycache__" in p or p.endswith((".pyc", ".egg-info"))]
    assert generated == [] and not any(".egg-info/" in p for p in copied)


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.timeout(300)
def test_the_build_stage_installs_a_console_script_that_starts(tmp_path: Path) -> None:
    if os.environ.get(SKIP_BUILD) == "1":
        pytest.skip(f"{SKIP_BUILD}=1: the build stage replay (needs the package index)")
    context = tmp_path / "context"
    build_context(REPO_ROOT, context)
    venv = tmp_path / "opt-ccm"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    replayed = replay_build_stage(
        BUILD,
        context=context,
        root=tmp_path / "root",
        venv=venv,
        environ=clean,
        unset=("PIP_NO_CACHE_DIR",),  # the image wants no cache; CI wants speed
    )
    pip_runs = [c for c in replayed.commands if c.startswith(f"{venv}/bin/pip install")]
    assert len(pip_runs) == 2, replayed.commands  # the lock, then the project
    assert "--no-deps" in pip_runs[0] and "-r requirements.lock" in pip_runs[0]
    assert pip_runs[1].split()[-1] == "."

    python = venv / "bin" / "python"
    env = clean | {"PYTHONDONTWRITEBYTECODE": "1"}
    checked = run([str(python), "-m", "pip", "check"], tmp_path, env)
    assert checked.returncode == 0, f"the lock misses a dependency:\n{checked.stdout}"
    located = run(
        [str(python), "-c", "import entrypoints.cli as m; print(m.__file__)"], tmp_path, env
    )
    assert Path(located.stdout.strip()).is_relative_to(venv), "not the installed copy"

    script = str(venv / "bin" / SCRIPT)
    helped = run([script, "--help"], tmp_path, env)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: {SCRIPT}") and "--cloud-config" in helped.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("url: ftp://xoa.example.com\ntoken: t\n", encoding="utf-8")
    for config, names in ((bad, "url"), (tmp_path / "missing.yaml", "cannot read")):
        refused = run([script, f"--cloud-config={config}"], tmp_path, env)
        assert refused.returncode == 1, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith(f"{SCRIPT}: error: cloud config {config}")
        assert names in lines[0]
