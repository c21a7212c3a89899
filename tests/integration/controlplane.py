"""The test control plane: the project's local cluster launcher, with the
build script as the way to get its binaries (built once, cached by version)."""

from __future__ import annotations

from pathlib import Path

from entrypoints.testkits.local_cluster.control_plane import (
    AUDIT_POLICY,
    SA_ISSUER,
    ControlPlane,
    free_port,
    write_kubeconfig,
)
from entrypoints.testkits.local_cluster.control_plane import find_binaries as _find

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-control-plane.sh"

__all__ = [
    "AUDIT_POLICY",
    "BUILD_SCRIPT",
    "REPO_ROOT",
    "SA_ISSUER",
    "ControlPlane",
    "find_binaries",
    "free_port",
    "write_kubeconfig",
]


def find_binaries(*, build: bool = True) -> Path:
    """The binaries' directory; builds them with the repo's script when ``build``."""
    return _find(build_script=BUILD_SCRIPT if build else None)
