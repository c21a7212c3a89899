"""Running the Dockerfile's stages on this machine (see the package docstring).

Build stages: the Debian base (``debian.rootfs_tar``) is unpacked into a temporary
directory, ENV and WORKDIR are tracked, COPY takes the filtered build context and
RUN runs in a chroot of it (in a private mount namespace: /dev, /proc and the
wheelhouse are mounted there and vanish with it). pip finds nothing but the
wheelhouse (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``): the same locked versions the
Dockerfile's pip would fetch, offline.

The final stage may hold, besides its apt line, only COPY --from another stage and
metadata: its layers are the Debian base and one layer per COPY, its config the
Dockerfile's ENV, USER, EXPOSE, ENTRYPOINT, CMD, WORKDIR and LABELs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import debian, oci
from .dockerfile import BASE_ENV, Stage, build_context, context_files, env_assignments, stages

BUILDER = Path(__file__).resolve().parent
#: Where RUN sees the wheelhouse (in the build stage only: never copied onward).
WHEELHOUSE_MOUNT = "/wheelhouse"


class BuildError(RuntimeError):
    """The Dockerfile asks for something this builder does not do; says what."""


def log(message: str) -> None:
    print(f"build-image: {message}", file=sys.stderr, flush=True)


def _sha(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# -- the wheelhouse ------------------------------------------------------------------
def _dpkg_version(root: Path, package: str) -> str:
    status = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    for stanza in status.split("\n\n"):
        if f"Package: {package}\n" in stanza + "\n":
            for line in stanza.splitlines():
                if line.startswith("Version: "):
                    return line.split(" ", 1)[1]
    raise BuildError(f"{package} is not installed in the image's Debian base")


def python_of(root: Path) -> str:
    """The image's python3 as ``3.11`` (from its /usr/bin/python3 link)."""
    target = os.readlink(root / "usr/bin/python3")
    return target.removeprefix("python")


def wheel_platforms(root: Path) -> list[str]:
    """Wheel platform tags the image's glibc and architecture accept."""
    glibc = _dpkg_version(root, "libc6").split("-")[0]
    major, minor = (int(x) for x in glibc.split(".")[:2])
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(debian.arch(), platform.machine())
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]


def wheelhouse(
    cache: Path, *, requirements: Sequence[str], python: str, platforms: Sequence[str]
) -> Path:
    """Wheels of exactly ``requirements`` for the image's Python, fetched by this
    machine's pip once per set of inputs."""
    key = _sha(
        *(r.encode() for r in requirements), python.encode(), *(p.encode() for p in platforms)
    )
    target = cache / f"wheelhouse-{key[:16]}"
    if (target / ".complete").is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    argv += [
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        "cp" + python.replace(".", ""),
    ]
    for tag in platforms:
        argv += ["--platform", tag]
    argv += ["--dest", str(target), *requirements]
    log(f"wheelhouse: pip download of {len(requirements)} requirements for Python {python}")
    done = subprocess.run(argv, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise BuildError(f"pip download failed: {done.stderr.strip()[-2000:]}")
    (target / ".complete").touch()
    return target


def locked_requirements(context: Path) -> list[str]:
    """The lock's pins and the project's build requirements (pip builds the project)."""
    lines = (context / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    pyproject = tomllib.loads((context / "pyproject.toml").read_text(encoding="utf-8"))
    return [*pins, *pyproject["build-system"]["requires"]]


# -- running a stage -----------------------------------------------------------------
@dataclass
class StageRun:
    stage: Stage
    base: debian.Base
    tar: Path
    root: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_ENV))
    workdir: str = "/"


#: What each kind of stage may hold besides its FROM and apt line.
BUILD_STAGE = ("ENV", "WORKDIR", "COPY", "RUN", "LABEL", "EXPOSE", "USER", "ENTRYPOINT", "CMD")
FINAL_STAGE = ("ENV", "WORKDIR", "COPY", "LABEL", "EXPOSE", "USER", "ENTRYPOINT", "CMD")


@dataclass(frozen=True)
class Plan:
    """The Dockerfile as this builder will run it, every instruction checked."""

    stages: list[Stage]
    bases: list[debian.Base]
    steps: list[list[tuple[str, str]]]


def split_base(stage: Stage) -> tuple[debian.Base, list[tuple[str, str]]]:
    """The stage's Debian base and the instructions left after its apt line."""
    rest = [(i.keyword, i.arguments) for i in stage.instructions]
    apt_line = None
    if rest and rest[0][0] == "RUN" and debian.APT_LINE.fullmatch(rest[0][1]):
        apt_line = rest.pop(0)[1]
    return debian.base_of(stage.base, apt_line), rest


def plan(text: str) -> Plan:
    """Read the Dockerfile; BuildError (or DebianError) on anything not understood."""
    parsed = stages(text)
    if not parsed:
        raise BuildError("no FROM in the Dockerfile")
    names = [stage.name for stage in parsed]
    bases, steps = [], []
    for number, stage in enumerate(parsed):
        base, rest = split_base(stage)
        final = number == len(parsed) - 1
        for keyword, arguments in rest:
            if keyword not in (FINAL_STAGE if final else BUILD_STAGE):
                where = "the final stage" if final else "a build stage"
                raise BuildError(f"{keyword} in {where}: not understood by this builder")
            if keyword == "COPY":
                words = shlex.split(arguments)
                options = [w for w in words if w.startswith("--")]
                if final:
                    source = words[0].removeprefix("--from=") if options else None
                    if len(words) != 3 or not options or source not in names[:number]:
                        raise BuildError(
                            f"COPY {arguments}: the final stage copies one path"
                            " --from an earlier stage"
                        )
                    if words[1].rstrip("/") != words[2].rstrip("/"):
                        raise BuildError(
                            f"COPY {arguments}: source and destination must be the same path"
                        )
                elif options:
                    raise BuildError(
                        f"COPY {arguments}: options are understood in the final stage only"
                    )
            if keyword == "RUN" and arguments.startswith("["):
                raise BuildError(f"RUN {arguments}: only the shell form is understood")
            if keyword in ("ENTRYPOINT", "CMD"):
                _exec_form(arguments)
        bases.append(base)
        steps.append(rest)
    return Plan(parsed, bases, steps)


def chroot_run(
    root: Path, command: str, *, env: Mapping[str, str], workdir: str, wheels: Path
) -> None:
    script = (
        'set -e; r="$1"; w="$2"; shift 2; mkdir -p "$r/dev" "$r/proc" "$r/wheelhouse"; '
        'mount -n --rbind /dev "$r/dev"; mount -n -t proc proc "$r/proc"; '
        'mount -n --bind -o ro "$w" "$r/wheelhouse"; exec chroot "$r" "$@"'
    )
    argv = ["unshare", "--mount", "--propagation", "private", "--fork", "--"]
    argv += ["sh", "-c", script, "sh", str(root), str(wheels), "/usr/bin/env", "-i"]
    argv += [f"{k}={v}" for k, v in env.items()]
    argv += ["/bin/sh", "-c", f"cd {shlex.quote(workdir)} && {command}"]
    done = subprocess.run(argv, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise BuildError(f"RUN {command} failed ({done.returncode}): {done.stderr.strip()[-3000:]}")


def run_build_stage(
    run: StageRun, rest: list[tuple[str, str]], *, context: Path, work: Path, cache: Path
) -> None:
    root = work / f"stage-{run.stage.name or 'unnamed'}"
    root.mkdir()
    subprocess.run(["tar", "-xpf", str(run.tar), "-C", str(root), "--numeric-owner"], check=True)
    run.root = root
    wheels: Path | None = None
    for keyword, arguments in rest:
        if keyword == "ENV":
            run.env.update(env_assignments(arguments, run.env))
        elif keyword == "WORKDIR":
            run.workdir = posixpath.join(run.workdir, arguments)
            (root / run.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(arguments)
            if any(s.startswith("--") for s in sources):
                raise BuildError(
                    f"COPY {arguments}: options are understood in the final stage only"
                )
            target = root / posixpath.join(run.workdir, dest).lstrip("/")
            for item in sources:
                origin = context / item
                if not origin.exists():
                    raise BuildError(f"COPY {item}: not in the build context (.dockerignore?)")
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    into = dest.endswith("/") or len(sources) > 1
                    destination = target / origin.name if into else target
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
        elif keyword == "RUN":
            if arguments.startswith("["):
                raise BuildError(f"RUN {arguments}: only the shell form is understood")
            if wheels is None:
                wheels = wheelhouse(
                    cache,
                    requirements=locked_requirements(context),
                    python=python_of(root),
                    platforms=wheel_platforms(root),
                )
            env = {
                **run.env,
                "HOME": "/root",
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": WHEELHOUSE_MOUNT,
            }
            started = time.monotonic()
            chroot_run(root, arguments, env=env, workdir=run.workdir, wheels=wheels)
            log(f"RUN {arguments} ({time.monotonic() - started:.1f}s)")
        elif keyword not in ("LABEL", "EXPOSE", "ARG", "USER", "ENTRYPOINT", "CMD"):
            raise BuildError(f"{keyword} in a build stage: not understood by this builder")


def base_layer(base: debian.Base, tar: Path, cache: Path) -> oci.Layer:
    record = cache / f"layer-{base.suite}-{base.key}.json"
    if record.is_file():
        layer = oci.Layer.from_json(json.loads(record.read_text()))
        if layer.blob.is_file():
            return layer
    created = f"debian:{base.suite}-slim + apt-get install {' '.join(base.packages)} (mmdebstrap)"
    layer = oci.layer_from_tar(
        tar, cache / f"layer-{base.suite}-{base.key}.tar.gz", created_by=created
    )
    record.write_text(json.dumps(layer.to_json()))
    return layer


# -- the whole image -----------------------------------------------------------------
def build(*, context: Path, dockerfile: Path, reference: str, cache: Path) -> Path:
    """Build ``dockerfile`` with ``context``; returns the OCI archive (cached by inputs)."""
    started = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    text = dockerfile.read_text(encoding="utf-8")
    recipe = plan(text)
    parsed = recipe.stages
    plans = list(zip(recipe.bases, recipe.steps, strict=True))
    files = context_files(context)
    key = _sha(
        text.encode(),
        reference.encode(),
        *(p.encode() + b"\0" + (context / p).read_bytes() for p in files),
        *(base.key.encode() for base, _ in plans),
        *(p.read_bytes() for p in sorted(BUILDER.glob("*.py"))),
    )[:16]
    name, _, tag = reference.rpartition(":")
    images = cache / "images"
    images.mkdir(exist_ok=True)
    out = images / f"{name.replace('/', '_')}-{tag}-{key}.oci.tar"
    if out.is_file():
        log(f"cached: {out}")
        return out
    tars = [debian.rootfs_tar(base, cache) for base, _ in plans]
    by_name: dict[str, StageRun] = {}
    with tempfile.TemporaryDirectory(prefix="build-", dir=cache) as tmp:
        work = Path(tmp)
        ctx = work / "context"
        build_context(context, ctx)
        for (base, rest), stage, tar in zip(plans[:-1], parsed[:-1], tars[:-1], strict=True):
            run = StageRun(stage, base, tar)
            run_build_stage(run, rest, context=ctx, work=work, cache=cache)
            if stage.name:
                by_name[stage.name] = run
        base, rest = plans[-1]
        final = StageRun(parsed[-1], base, tars[-1])
        layers = [base_layer(base, tars[-1], cache)]
        settings: dict[str, str] = {}
        for number, (keyword, arguments) in enumerate(rest):
            if keyword == "COPY":
                layers.append(_copy_layer(arguments, by_name, work / f"layer-{number}.tar.gz"))
            elif keyword == "ENV":
                final.env.update(env_assignments(arguments, final.env))
            elif keyword == "WORKDIR":
                final.workdir = posixpath.join(final.workdir, arguments)
                settings["WORKDIR"] = final.workdir
            elif keyword in ("USER", "ENTRYPOINT", "CMD"):
                settings[keyword] = arguments
        config = oci.image_config(
            layers=layers,
            env=final.env,
            entrypoint=_exec_form(settings.get("ENTRYPOINT")),
            cmd=_exec_form(settings.get("CMD")),
            user=settings.get("USER", ""),
            workdir=settings.get("WORKDIR", ""),
            exposed=[p for a in parsed[-1].all("EXPOSE") for p in a.split()],
            labels=parsed[-1].labels(),
        )
        oci.write_archive(out, reference=reference, layers=layers, config=config)
    for old in images.glob(f"{name.replace('/', '_')}-{tag}-*.oci.tar"):
        if old != out:
            old.unlink()
    sizes = ", ".join(f"{layer.size / 2**20:.1f} MiB" for layer in layers)
    log(
        f"{reference}: {out} ({out.stat().st_size / 2**20:.1f} MiB; layers {sizes}; "
        f"{time.monotonic() - started:.0f}s)"
    )
    return out


def _exec_form(arguments: str | None) -> list[str] | None:
    if arguments is None:
        return None
    if not arguments.startswith("["):
        raise BuildError(f"{arguments}: only the exec (JSON) form is understood")
    value = json.loads(arguments)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BuildError(f"{arguments}: not a list of strings")
    return value


def _copy_layer(arguments: str, stages_by_name: Mapping[str, StageRun], blob: Path) -> oci.Layer:
    words = shlex.split(arguments)
    if len(words) != 3 or not words[0].startswith("--from="):
        raise BuildError(f"COPY {arguments}: the final stage only copies one path --from a stage")
    source, dest = words[1], words[2]
    run = stages_by_name.get(words[0].removeprefix("--from="))
    if run is None or run.root is None:
        raise BuildError(f"COPY {arguments}: no earlier stage of that name")
    if source.rstrip("/") != dest.rstrip("/"):
        raise BuildError(f"COPY {arguments}: source and destination paths must be the same here")
    return oci.layer_from_tree(run.root, [source], blob, created_by=f"COPY {arguments}")


def build_pause(binary: Path, *, reference: str, cache: Path) -> Path:
    """A one-file image of a static pause binary (the pods' sandbox)."""
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    key = _sha(binary.read_bytes(), reference.encode(), (BUILDER / "oci.py").read_bytes())[:16]
    out = images / f"pause-{key}.oci.tar"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(prefix="pause-", dir=cache) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        shutil.copy2(binary, root / "pause")
        (root / "pause").chmod(0o755)
        layer = oci.layer_from_tree(
            root, ["/pause"], Path(tmp) / "layer.tar.gz", created_by="COPY pause /pause"
        )
        config = oci.image_config(
            layers=[layer], env=BASE_ENV, entrypoint=["/pause"], user="65535:65535"
        )
        oci.write_archive(out, reference=reference, layers=[layer], config=config)
    for old in images.glob("pause-*.oci.tar"):
        if old != out:
            old.unlink()
    return out
