"""Reading the Dockerfile and .dockerignore, as ``docker build`` reads them.

Only the instructions this project's Dockerfile uses are understood (FROM, ENV,
WORKDIR, RUN in shell form, COPY from the context or another stage, and the
metadata ones); anything else fails loudly rather than being skipped.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

#: What a Debian image's config sets before any ENV of the Dockerfile.
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
#: Instructions that only set image metadata or build arguments.
METADATA = ("LABEL", "EXPOSE", "USER", "ENTRYPOINT", "CMD")


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

    def env(self, base: Mapping[str, str] = BASE_ENV) -> dict[str, str]:
        """The environment after every ENV (``$NAME`` and ``${NAME}`` expanded)."""
        out = dict(base)
        for arguments in self.all("ENV"):
            out.update(env_assignments(arguments, out))
        return out

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for arguments in self.all("LABEL"):
            out.update(env_assignments(arguments, {}))
        return out


def env_assignments(arguments: str, env: Mapping[str, str]) -> dict[str, str]:
    """``KEY=value ...`` (ENV, LABEL), values expanded against ``env``."""
    out: dict[str, str] = {}
    for item in shlex.split(arguments):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{arguments!r}: only the key=value form is understood")
        out[key] = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: {**env, **out}.get(m[1], ""), value
        )
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
            if not out:
                raise ValueError(f"{instruction.keyword} before FROM")
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


def context_files(source: Path) -> list[str]:
    """What .dockerignore lets through from ``source`` (relative posix paths, sorted)."""
    rules = ignore_rules((source / ".dockerignore").read_text(encoding="utf-8"))
    kept: list[str] = []
    for root, dirs, files in os.walk(source):
        rel_root = Path(root).relative_to(source)
        keep = []
        for name in sorted(dirs):
            rel = (rel_root / name).as_posix()
            if not excluded(rel, rules) or _may_reinclude(rel, rules):
                keep.append(name)
        dirs[:] = keep
        kept.extend(
            rel
            for rel in ((rel_root / name).as_posix() for name in sorted(files))
            if not excluded(rel, rules)
        )
    return sorted(kept)


def build_context(source: Path, target: Path) -> list[str]:
    """Copy what .dockerignore lets through from ``source`` into ``target``; returns
    the copied files (relative, sorted)."""
    copied = context_files(source)
    for rel in copied:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)
    return copied
