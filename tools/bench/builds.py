"""Which CCM a benchmark runs: this tree, or an earlier revision of it side by side.

``scripts/bench --baseline REV`` measures this tree and REV in one run on the
same control plane and fake XO, so the machine's noise hits both alike. REV
runs from a git worktree (``$XOCCM_BENCH_BASE`` when that directory holds that
revision, else one made under ``bench-results/``) with this tree's interpreter and dependencies, its
own ``src`` first on ``PYTHONPATH``. Revisions from before secure serving
(87c6494 and older) serve ``/metrics`` over plain HTTP on ``--secure-port`` and
know none of the authorization flags: :attr:`Build.secure` says which.

``scripts/bench --go-ccm BIN`` adds the Go CCM itself (:func:`go_ccm`): the binary an
operator switches from, built from its source (its module is not served to the
machines this project runs on, so the bench cannot fetch it), run with the same
flags and cloud config, as drop-in promises.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from tests.integration.ccm_process import OPEN_PATHS, CCMProcess

from .runtime import production_python

ROOT = Path(__file__).resolve().parents[2]
#: The revision the issue's figures were taken at (the last one before its work).
DEFAULT_BASELINE = "87c6494"
#: A checkout of the baseline kept elsewhere (shared between runs), if any.
SHARED_BASE = Path(os.environ["XOCCM_BENCH_BASE"]) if os.environ.get("XOCCM_BENCH_BASE") else None
_profile_numbers = itertools.count(1)


@dataclass(frozen=True)
class Build:
    """One CCM to measure: its source tree, run on the production install of its own
    lock file (:mod:`.runtime`), as its image would run it."""

    name: str
    src: Path
    secure: bool = True
    #: write a cProfile of the whole process (every thread) here, one file per run
    profile_dir: Path | None = None
    #: the interpreter (``with_runtime``: the production install; None: this one)
    python: Path | None = None
    #: the Go CCM's executable instead of a Python tree (:func:`go_ccm`)
    binary: Path | None = None

    @property
    def ready_path(self) -> str:
        """What says it is ready: the Go CCM serves ``/healthz``, not ``/readyz``."""
        return "/readyz" if self.binary is None else "/healthz"

    def with_runtime(self) -> Build:
        """This build on the production install of its own lock file."""
        if self.binary is not None:
            return self
        return replace(self, python=production_python(self.src.parent / "requirements.lock"))

    def command(self, profile: Path | None = None) -> list[str]:
        if self.binary is not None:
            # The Go CCM's manifests pass these two; this CCM takes and needs neither.
            return [
                str(self.binary),
                "--cloud-provider=xenorchestra",
                f"--controllers={GO_CONTROLLERS}",
            ]
        python = str(self.python or sys.executable)
        if profile is not None:
            return [python, "-m", "tools.bench.profiled", str(profile)]
        return [python, "-c", "import sys; from entrypoints.cli import main; sys.exit(main())"]

    def env(self) -> dict[str, str]:
        """Its source first, then this tree (for ``tools.bench.profiled``)."""
        return {} if self.binary is not None else {"PYTHONPATH": f"{self.src}:{ROOT}"}

    def next_profile(self, label: str) -> Path | None:
        """Where the next run's profile goes (None: not profiling)."""
        if self.profile_dir is None:
            return None
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in label).strip("-")
        return self.profile_dir / f"{self.name}-{next(_profile_numbers):02d}-{slug}.prof"


THIS_TREE = Build(name="this-tree", src=ROOT / "src")
#: The controllers the Go CCM's manifests run.
GO_CONTROLLERS = "cloud-node,cloud-node-lifecycle,cloud-node-label-sync"


def go_ccm(binary: Path) -> Build:
    """The Go CCM's binary as a build (``--go-ccm``)."""
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise SystemExit(f"--go-ccm {binary}: not an executable file")
    return Build(name="go-ccm", src=binary.parent, binary=binary)


class BenchCCM(CCMProcess):
    """A :class:`CCMProcess` of ``build``: its command, its serving, its profile."""

    def __init__(
        self,
        *,
        build: Build,
        kubeconfig: Path | str,
        cloud_config: Path | str,
        flags: Sequence[str] = (),
        profile: Path | None = None,
    ) -> None:
        super().__init__(
            kubeconfig=kubeconfig, cloud_config=cloud_config, flags=flags, env=build.env()
        )
        self.build = build
        self.profile = profile
        self.ready_path = build.ready_path
        argv = [a for a in self.argv[1:] if build.secure or a != OPEN_PATHS]
        self.argv = [*build.command(profile), *argv]

    @property
    def url(self) -> str:
        scheme = "https" if self.build.secure else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=2.0, verify=False) as client:
            return await client.get(self.url + path)

    async def stop(self, within: float = 15.0) -> int:
        # Writing a profile of every thread takes a while after SIGTERM.
        return await super().stop(within=max(within, 120.0) if self.profile else within)


def _rev_of(path: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def baseline(rev: str) -> Build:
    """The build of revision ``rev``: ``$XOCCM_BENCH_BASE`` when it holds it, else a
    detached worktree of it under ``bench-results/`` (made once, kept)."""
    full = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = SHARED_BASE is not None and SHARED_BASE.is_dir() and _rev_of(SHARED_BASE) == full
    tree = SHARED_BASE if shared else None
    if tree is None:
        tree = ROOT / "bench-results" / f"worktree-{full[:12]}"
        if not tree.is_dir():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), full],
                check=True,
                capture_output=True,
            )
    entrypoints = tree / "src" / "entrypoints"
    secure = (entrypoints / "go_serving_flags.py").exists() or (
        entrypoints / "flags" / "table.py"
    ).exists()
    return Build(name=rev, src=tree / "src", secure=secure)
