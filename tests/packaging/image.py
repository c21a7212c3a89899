"""Reading the Dockerfile and .dockerignore, and replaying the build stage
without a container engine.

Only the instructions this project's Dockerfile uses are understood (FROM,
ENV, WORKDIR, RUN in shell form, COPY from the context, and the metadata
ones); anything else fails loudly rather than being skipped.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .chart import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
#: Where the build stage puts its venv; a temporary venv stands in for it.
IMAGE_VENV = "/opt/ccm"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for item in shlex.split(arguments):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {arguments!r}: only the key=value form is understood"
                out[key] = value
        return out


def instructions(text: str) -> Iterator[Instruction]:
    """Logical lines (continuations joined, comments and blanks dropped)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip())


def stages(text: str) -> list[Stage]:
    out: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            out.append(Stage(base=words[0], name=name))
        else:
            assert out, f"{instruction.keyword} before FROM"
            out[-1].instructions.append(instruction)
    return out


# -- .dockerignore ---------------------------------------------------------------
@dataclass(frozen=True)
class IgnoreRule:
    pattern: tuple[str, ...]
    exclude: bool


def ignore_rules(text: str) -> list[IgnoreRule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        cleaned = PurePosixPath(line.lstrip("!").strip().lstrip("/")).as_posix()
        rules.append(IgnoreRule(tuple(cleaned.split("/")), exclude))
    return rules


def _matches(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Docker's matching: ``*`` stays within a path element, ``**`` spans any number."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and (_matches(pattern[1:], parts[1:]))
    )


def excluded(path: str, rules: Sequence[IgnoreRule]) -> bool:
    """Whether ``path`` (relative, posix) is left out of the build context: the last
    rule matching the path or one of its parent directories decides."""
    parts = path.split("/")
    verdict = False
    for rule in rules:
        if any(_matches(rule.pattern, parts[:n]) for n in range(1, len(parts) + 1)):
            verdict = rule.exclude
    return verdict


def _may_reinclude(directory: str, rules: Sequence[IgnoreRule]) -> bool:
    """Whether an exception rule could bring back something under ``directory``."""
    parts = directory.split("/")
    for rule in rules:
        if rule.exclude:
            continue
        prefix = list(rule.pattern[: len(parts)])
        if "**" in rule.pattern[: len(parts) + 1] or _matches(prefix, parts):
            return True
    return False


def build_context(source: Path, target: Path) -> list[str]:
    """Copy what .dockerignore lets through from ``source`` into ``target``; returns
    the copied files (relative, sorted)."""
    rules = ignore_rules((source / ".dockerignore").read_text(encoding="utf-8"))
    copied: list[str] = []
    for root, dirs, files in os.walk(source):
        rel_root = Path(root).relative_to(source)
        keep = []
        for name in sorted(dirs):
            rel = (rel_root / name).as_posix()
            if not excluded(rel, rules) or _may_reinclude(rel, rules):
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            rel = (rel_root / name).as_posix()
            if excluded(rel, rules):
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(root) / name, target / rel)
            copied.append(rel)
    return sorted(copied)


# -- replaying the build stage ---------------------------------------------------
@dataclass
class BuildRun:
    commands: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


def replay_build_stage(
    stage: Stage,
    *,
    context: Path,
    root: Path,
    venv: Path,
    environ: Mapping[str, str],
    unset: Sequence[str] = (),
) -> BuildRun:
    """Run ``stage``'s instructions on this machine: ``/opt/ccm`` is ``venv``, other
    absolute paths live under ``root``, ``python`` is this interpreter's; the
    ``unset`` variables are dropped from the stage's ENV (e.g. to use pip's cache)."""

    def host(path: str, workdir: Path) -> Path:
        if path == IMAGE_VENV or path.startswith(IMAGE_VENV + "/"):
            return venv / path[len(IMAGE_VENV) :].lstrip("/")
        return root / path.lstrip("/") if path.startswith("/") else workdir / path

    env = dict(environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    workdir = root
    run = BuildRun()
    for instruction in stage.instructions:
        keyword, arguments = instruction.keyword, instruction.arguments
        if keyword == "ENV":
            env.update(Stage(base="", name=None, instructions=[instruction]).env())
            for name in unset:
                env.pop(name, None)
        elif keyword == "WORKDIR":
            workdir = host(arguments, workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(arguments)
            assert not any(s.startswith("--") for s in sources), f"COPY {arguments}"
            target = host(dest, workdir)
            for item in sources:
                origin = context / item
                if not origin.exists():
                    raise FileNotFoundError(f"COPY {item}: not in the build context")
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    into_dir = dest.endswith("/") or len(sources) > 1
                    destination = target / origin.name if into_dir else target
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
        elif keyword == "RUN":
            assert not arguments.startswith("["), "only the shell form of RUN is understood"
            command = re.sub(rf"{re.escape(IMAGE_VENV)}(?=/|\s|$)", str(venv), arguments)
            run.commands.append(command)
            done = subprocess.run(
                ["sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            run.output.append(done.stdout + done.stderr)
            if done.returncode != 0:
                raise RuntimeError(f"RUN {arguments} failed ({done.returncode}):\n{done.stderr}")
        elif keyword not in ("LABEL", "ARG", "EXPOSE"):
            raise NotImplementedError(f"{keyword} in the build stage")
    return run
